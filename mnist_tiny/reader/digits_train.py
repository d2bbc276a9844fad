"""Tune the reader's own digit model: a registry model's shipped weights, trained a few epochs more on MNIST's
training images *and* digits as the reader cuts them out of pages (`reader.digits_data`), written as ONNX:

    MNIST_TINY_DATA_DIR=../shared/data python -m mnist_tiny.reader.digits_train --out mnist_tiny/reader/digits.onnx

Why: a model trained on MNIST alone has never seen a digit drawn with a thick marker, a pad's stroke, a JPEG
crop cut out of a photographed page; the reader read those worse than the model scores MNIST (docs/reading.md).
The architecture stays the base model's (10 classes, its parameter count); the registry model is not changed.
The temperature is fitted on validation (MNIST training digits 55,000–59,999 and validation crops); the MNIST test
accuracy is reported, never used to choose. Needs `[train]`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mnist_tiny.reader.gate_data import DRAWN_SHARE

HYPER = {
    "base": "fast-6k",  # the registry model whose shipped weights are tuned
    "crops": 30_000,  # reader crops for training, generated once, in memory
    "val_crops": 5_000,
    "drawn": DRAWN_SHARE,  # of the training crops: drawn stroke by stroke with pens of 2–24% (the rest MNIST's)
    "share": 0.35,  # of each batch: reader crops (the rest MNIST training images 0–54,999)
    "epochs": 4,  # over the MNIST images
    "batch_size": 256,
    "lr": 0.003,  # AdamW, one-cycle
    "weight_decay": 1e-4,
    "label_smoothing": 0.05,
    "rotate": 8.0, "translate": 0.08, "scale": 0.08,  # the batch's random affine (data.augment)
    "mnist_images": 55_000,  # fewer: a smoke run
    "seed": 0,
}


def train(data_dir: Path, out: Path, hyper: dict) -> dict:
    import torch
    import torch.nn.functional as F

    from mnist_tiny.data.augment import random_affine
    from mnist_tiny.data.mnist import load_mnist
    from mnist_tiny.embed.runtime import READER_MODEL
    from mnist_tiny.evaluation.calibration import fit_temperature
    from mnist_tiny.evaluation.metrics import logits_for
    from mnist_tiny.models.hub import get_model
    from mnist_tiny.models.registry import count_params
    from mnist_tiny.reader.digits_data import VAL_SPAN, digit_crops

    started = time.time()
    torch.manual_seed(hyper["seed"])
    data = load_mnist(Path(data_dir), False)
    images, labels = data["train"].images, data["train"].labels.long()
    mx, my = images[:min(hyper["mnist_images"], VAL_SPAN.start)], labels[:min(hyper["mnist_images"], VAL_SPAN.start)]
    cx, cy = map(torch.from_numpy, digit_crops(hyper["crops"], hyper["seed"] + 11, False, data_dir,
                                                    hyper["drawn"]))
    vx, vy = map(torch.from_numpy, digit_crops(hyper["val_crops"], hyper["seed"] + 1011, True, data_dir))
    generated = time.time() - started
    model = get_model(hyper["base"], pretrained=True)
    opt = torch.optim.AdamW(model.parameters(), lr=hyper["lr"], weight_decay=hyper["weight_decay"])
    batch, own = hyper["batch_size"], int(hyper["batch_size"] * hyper["share"])
    steps = max(1, len(my) // (batch - own))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, hyper["lr"], total_steps=max(10, hyper["epochs"] * steps),
                                                pct_start=0.2)  # ≥ 10 steps: a smoke run's warm-up is a step
    gen = torch.Generator().manual_seed(hyper["seed"])
    for epoch in range(hyper["epochs"]):
        model.train()
        order = torch.randperm(len(my), generator=gen)
        for k in range(steps):
            idx = order[k * (batch - own):(k + 1) * (batch - own)]
            pick = torch.randint(0, len(cy), (own,), generator=gen)
            x = torch.cat([mx[idx], cx[pick]]).unsqueeze(1).float().div_(255)
            x = random_affine(x, hyper["rotate"], hyper["translate"], hyper["scale"], gen)
            loss = F.cross_entropy(model(x), torch.cat([my[idx], cy[pick]]), label_smoothing=hyper["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{hyper['epochs']} loss {loss.item():.4f} ({time.time() - started:.0f} s)", flush=True)
    # BatchNorm statistics retaken over clean images (the recipes' `recalibrate_bn`), MNIST and crops as trained.
    from mnist_tiny.training.bn_stats import recalibrated

    model = recalibrated(model, torch.cat([mx, cx]), 20_000, hyper["seed"])

    def logits(x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return logits_for(model, x, torch.device("cpu")).numpy()

    val_mnist = logits(images[VAL_SPAN]), labels[VAL_SPAN].numpy()
    val_crops = logits(vx), vy.numpy()
    temperature = fit_temperature(np.concatenate([val_mnist[0], val_crops[0]]).astype(np.float64),
                                  np.concatenate([val_mnist[1], val_crops[1]]))
    report = {"name": READER_MODEL, "base": hyper["base"], "temperature": temperature,
              "val_mnist_acc": float((val_mnist[0].argmax(1) == val_mnist[1]).mean()),
              "val_crops_acc": float((val_crops[0].argmax(1) == val_crops[1]).mean()),
              "test_acc": float((logits(data["test"].images).argmax(1) == data["test"].labels.numpy()).mean()),
              "params": count_params(model), "generate_s": round(generated, 1),
              "seconds": round(time.time() - started, 1), "hyper": hyper}
    from mnist_tiny.embed.export import export_onnx

    export_onnx(model, out, {"model": READER_MODEL, "base": hyper["base"], "temperature": f"{temperature:.6f}",
                             "test_acc": f"{report['test_acc']:.4f}",
                             "training": json.dumps({k: v for k, v in report.items() if k != "name"})})
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="a new .onnx file")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MNIST_TINY_DATA_DIR", "data")))
    for key, value in HYPER.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"--out {args.out}: exists; choose a new file (nothing is overwritten)")
    print(json.dumps(train(args.data_dir, args.out, {k: getattr(args, k) for k in HYPER}), indent=1))


if __name__ == "__main__":
    main()
