"""`mnist-tiny bench`: training and inference throughput of the normal (fast) path, and optionally of the classic
per-sample torchvision pipeline on the same model, batch size and machine, with the ratio.

The fast path is what `train`/`eval` run: uint8 tensors in memory, one batched affine augmentation per step,
evaluation in large batches under `inference_mode`. The classic path is what the reference notebooks do:
`torchvision.datasets.MNIST` with per-sample PIL `RandomRotation`/`RandomAffine` + `ToTensor` in a `DataLoader`.

Each pass runs as a whole process of its own (`python -m mnist_tiny.training.bench PIPELINE ...`), the two pipelines
interleaved and repeated, so start-up (imports, data loading) counts as it does for a user, neither pass inherits
the other's warm caches, and the figures are medians. The processes report their own epoch and eval times too.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from typing import Any

from mnist_tiny.process_imports import importing_torch

# A process of our pipeline (`python -m mnist_tiny.training.bench fast …`) imports torch as `mnist-tiny` does (the
# cycle collector paused, the meta kernels deferred); the classic pipeline's process imports as a plain script does.
with importing_torch() if __name__ == "__main__" and sys.argv[1:2] == ["fast"] else nullcontext():
    import torch
    import torch.nn.functional as F

    from mnist_tiny.data.mnist import load_mnist
    from mnist_tiny.device import resolve_device
    from mnist_tiny.errors import UserError
    from mnist_tiny.evaluation.metrics import logits_for
    from mnist_tiny.fast import inference_copy
    from mnist_tiny.models.refs import model_for
    from mnist_tiny.models.registry import count_params
    from mnist_tiny.parallel.distributed import World, barrier, local_processes, solo_threads
    from mnist_tiny.parallel.policy import planned_processes, threads_per_process
    from mnist_tiny.settings import Settings
    from mnist_tiny.training.loop import Run, model_source


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fast_pass(world: World, s: Settings, images: int, device: torch.device, train, test) -> dict[str, float]:
    """One epoch of `train`'s own loop (`Run.train_epoch`) over `images` training images, in each of its processes,
    then what `eval` does (rank 0 alone)."""
    source, scaling = model_source(s)
    run = Run(s, world, device, source, scaling, images)
    x_all, y_all = train.images.to(device), train.labels.to(device)
    order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(s.seed))[:images].to(device)
    barrier(world)
    _sync(device)
    start = time.perf_counter()
    run.train_epoch(0, order, 0, x_all, y_all, stop=[], reporter=None)
    _sync(device)
    barrier(world)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    if world.is_main:
        with solo_threads(world):
            logits_for(inference_copy(run.eval_model, device), test.images, device, s.eval_batch_size)
    _sync(device)
    eval_s = time.perf_counter() - start
    barrier(world)  # helpers wait idle (not exiting, which would take a core from the evaluation)
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
    model = model_for(s.model, s.input_scaling).to(device)
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


def one_pass(pipeline: str, s: Settings, images: int) -> dict[str, float]:
    """One pipeline's epoch + eval in this process (what each benchmark process runs).

    The fast pipeline uses as many processes as `train` would for these settings (helpers on a multi-core CPU)."""
    device = resolve_device(s.device)
    if pipeline == "classic":
        if s.threads:
            torch.set_num_threads(s.threads)
        return classic_pass(s, images, device)
    splits = load_mnist(s.data_dir, False)
    processes = planned_processes(s, device)
    if processes == 1:
        if s.threads:
            torch.set_num_threads(s.threads)
        return fast_pass(World(), s, images, device, splits["train"], splits["test"])
    train, test = splits["train"], splits["test"]
    with local_processes(processes, threads_per_process(s.threads, processes), fast_pass, s, images, device, train,
                         test) as world:
        return fast_pass(world, s, images, device, train, test)


def timed_process(pipeline: str, s: Settings, images: int) -> dict[str, float]:
    command = [sys.executable, "-m", "mnist_tiny.training.bench", pipeline, str(images), s.model_dump_json()]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"bench: the {pipeline} pipeline's process failed ({last})")
    return {**json.loads(done.stdout), "process_seconds": seconds}


def bench(s: Settings, images: int = 25_600, baseline: bool = False, runs: int = 3) -> dict[str, Any]:
    """Median figures over `runs` processes per pipeline; with `baseline`, the two pipelines alternate."""
    # A missing dataset or device is reported here, once, before any process starts (and a download happens once).
    device = resolve_device(s.device)
    load_mnist(s.data_dir, s.download, s.mirror, s.verify_data)
    pipelines = ("fast", "classic") if baseline else ("fast",)
    passes: dict[str, list[dict[str, float]]] = {name: [] for name in pipelines}
    for run in range(runs):
        for name in pipelines if run % 2 == 0 else pipelines[::-1]:
            passes[name].append(timed_process(name, s, images))
    processes = planned_processes(s, device)
    threads = threads_per_process(s.threads, processes) if processes > 1 else s.threads or torch.get_num_threads()
    result: dict[str, Any] = {"model": s.model, "params": count_params(model_for(s.model, s.input_scaling)), "device": str(device),
                              "processes": processes, "threads": threads, "batch_size": s.batch_size,
                              "images": images, "runs": runs}
    for name, rows in passes.items():
        result[name] = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        result[name]["all_process_seconds"] = [row["process_seconds"] for row in rows]
        result[name]["all_epoch_plus_eval_seconds"] = [row["train_seconds"] + row["eval_seconds"] for row in rows]
    if baseline:
        fast, classic = result["fast"], result["classic"]
        result["speedup"] = {
            "train": fast["train_images_per_s"] / classic["train_images_per_s"],
            "eval": fast["eval_images_per_s"] / classic["eval_images_per_s"],
            "epoch_plus_eval": (classic["train_seconds"] + classic["eval_seconds"])
            / (fast["train_seconds"] + fast["eval_seconds"]),
            "process": classic["process_seconds"] / fast["process_seconds"],
            # Run i of each pipeline ran back to back, so their ratio shows how much a noisy machine moves it.
            "epoch_plus_eval_per_run": [c / f for f, c in zip(fast["all_epoch_plus_eval_seconds"],
                                                               classic["all_epoch_plus_eval_seconds"])],
        }
    return result


if __name__ == "__main__":  # one benchmark process: PIPELINE IMAGES SETTINGS_JSON → JSON on stdout
    try:
        print(json.dumps(one_pass(sys.argv[1], Settings.model_validate_json(sys.argv[3]), int(sys.argv[2]))))
    except UserError as e:
        sys.exit(str(e))  # one line on stderr, which the parent quotes
    if sys.argv[1] == "fast":  # as `mnist-tiny train` ends; the classic script ends as scripts do
        from mnist_tiny.process_exit import quick_exit

        quick_exit(0)
