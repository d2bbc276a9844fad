"""`mnist-tiny bench`: training and inference throughput of the normal (fast) path, and optionally of the classic
per-sample torchvision pipeline on the same model, batch size and machine, with the ratio.

The fast path is what `train`/`eval` run: uint8 tensors in memory, one batched affine augmentation per step,
evaluation in large batches under `inference_mode`. The classic path is what the reference notebooks do:
`torchvision.datasets.MNIST` with per-sample PIL `RandomRotation`/`RandomAffine` + `ToTensor` in a `DataLoader`.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F

from .data import load_mnist
from .device import inference_copy, prepare_model, resolve_device
from .evaluate import logits_for
from .registry import count_params, get_model
from .settings import Settings
from .optim import make_optimizer
from .train import train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fast_pass(s: Settings, images: int, device: torch.device, train, test) -> dict[str, float]:
    torch.manual_seed(s.seed)
    model = prepare_model(get_model(s.model), device, training=True)
    optimizer = make_optimizer(model, s)
    x_all, y_all = train.images.to(device), train.labels.to(device)
    rng = torch.Generator(device=device).manual_seed(s.seed)
    order = torch.randperm(len(y_all), device=device)[:images]
    model.train()
    _sync(device)
    start = time.perf_counter()
    for idx in order.split(s.batch_size):
        train_step(model, optimizer, x_all[idx], y_all[idx], s, rng)
    _sync(device)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    logits_for(inference_copy(model, device), test.images, device, s.eval_batch_size)
    _sync(device)
    eval_s = time.perf_counter() - start
    return {"train_seconds": train_s, "eval_seconds": eval_s, "train_images_per_s": len(order) / train_s,
            "eval_images_per_s": len(test.images) / eval_s}


def classic_pass(s: Settings, images: int, device: torch.device) -> dict[str, float]:
    """The references' pipeline: per-sample PIL transforms in a DataLoader, batch `s.batch_size`, SGD."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    augment = transforms.Compose([transforms.RandomRotation(s.rotate), transforms.RandomAffine(0, (s.translate, s.translate),
                                  (1 - s.scale, 1 + s.scale)), transforms.ToTensor()])
    train_set = datasets.MNIST(str(s.data_dir), train=True, download=False, transform=augment)
    test_set = datasets.MNIST(str(s.data_dir), train=False, download=False, transform=transforms.ToTensor())
    torch.manual_seed(s.seed)
    model = get_model(s.model).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum)
    loader = DataLoader(Subset(train_set, torch.randperm(len(train_set))[:images].tolist()), batch_size=s.batch_size,
                        shuffle=False, num_workers=0)
    model.train()
    _sync(device)
    start = time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _sync(device)
    train_s = time.perf_counter() - start
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        for x, _ in DataLoader(test_set, batch_size=1000):
            model(x.to(device))
    _sync(device)
    eval_s = time.perf_counter() - start
    return {"train_seconds": train_s, "eval_seconds": eval_s, "train_images_per_s": images / train_s,
            "eval_images_per_s": len(test_set) / eval_s}


def bench(s: Settings, images: int = 25_600, baseline: bool = False) -> dict[str, Any]:
    if s.threads:
        torch.set_num_threads(s.threads)
    device = resolve_device(s.device)
    splits = load_mnist(s.data_dir, s.download, s.mirror)
    result: dict[str, Any] = {"model": s.model, "params": count_params(get_model(s.model)), "device": str(device),
                              "threads": torch.get_num_threads(), "batch_size": s.batch_size, "images": images,
                              "fast": fast_pass(s, images, device, splits["train"], splits["test"])}
    if baseline:
        result["classic"] = classic_pass(s, images, device)
        fast, classic = result["fast"], result["classic"]
        result["speedup"] = {
            "train": fast["train_images_per_s"] / classic["train_images_per_s"],
            "eval": fast["eval_images_per_s"] / classic["eval_images_per_s"],
            "epoch_plus_eval": (classic["train_seconds"] + classic["eval_seconds"])
            / (fast["train_seconds"] + fast["eval_seconds"]),
        }
    return result
