"""Train the reader's gate and write it as ONNX, with the threshold chosen on a validation set of other writers,
fonts and seeds (`reader.gate_data`):

    MNIST_TINY_DATA_DIR=../shared/data python -m mnist_tiny.reader.gate_train --out mnist_tiny/reader/gate.onnx

Needs `[train]` (torch, onnx), Debian's `dataset-fashion-mnist` and fonts (see gate_data). The threshold is the
largest one that keeps at least DIGITS_KEPT of the validation digits (a gate must not cost the reader its
digits); a second, `threshold_flag`, leaves DIGITS_UNFLAGGED of them unflagged: a mark between the two is read and
flagged. The figures it reaches are printed and kept in the file's metadata. `--flag-only` sets the second in an
existing file (the validation set made again, the same seed).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mnist_tiny.reader.onnx_files import set_meta, write_onnx

HYPER = {
    "train_examples": 40_000,  # generated once, in memory
    "val_examples": 8_000,
    "epochs": 12,
    "batch_size": 128,
    "lr": 0.01,  # AdamW, cosine to zero
    "weight_decay": 1e-4,
    "seed": 0,
}
DIGITS_KEPT = 0.998
# A mark the gate doubts but does not refuse is read and flagged (`low_confidence`, `not_digit`): flagging 1% of
# the validation digits flagged 2.1 points more of the non-digits than the refusal threshold alone did
# (docs/reading.md), and a flag loses nothing.
DIGITS_UNFLAGGED = 0.99
# An image already in MNIST's format is read as it is (`predict.mnist_format`): there the gate must keep almost
# every digit (a clean MNIST PNG should read as the model scores it), with its own threshold, set on MNIST's
# training digits 55,000–59,999 (never trained on): half the lowest chance any of them gets.


def build():
    import torch
    from torch import nn

    from mnist_tiny.reader.gate import CLASSES, N_FEATURES

    class GateNet(nn.Module):
        """Three conv blocks on the crop (8, 16, 32 channels), a global average, the box's features beside it."""

        def __init__(self):
            super().__init__()

            def block(cin, cout):
                return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                     nn.MaxPool2d(2))

            self.body = nn.Sequential(block(1, 8), block(8, 16), block(16, 32), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
            self.head = nn.Sequential(nn.Linear(32 + N_FEATURES, 32), nn.ReLU(), nn.Linear(32, len(CLASSES)))

        def forward(self, crop, features):
            return self.head(torch.cat([self.body(crop), features], 1))

    return GateNet()


def train(data_dir: Path, out: Path, hyper: dict) -> dict:
    import torch

    from mnist_tiny.reader.gate import CLASSES
    from mnist_tiny.reader.gate_data import make

    started = time.time()
    torch.manual_seed(hyper["seed"])
    train_set = make(hyper["train_examples"], hyper["seed"] + 1, False, data_dir)
    val_set = make(hyper["val_examples"], hyper["seed"] + 1001, True, data_dir)
    generated = time.time() - started
    x = torch.from_numpy(train_set["crops"])[:, None]
    f = torch.from_numpy(train_set["features"])
    y = torch.from_numpy(train_set["labels"])
    net = build()
    opt = torch.optim.AdamW(net.parameters(), lr=hyper["lr"], weight_decay=hyper["weight_decay"])
    steps = hyper["epochs"] * (len(y) // hyper["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, hyper["lr"], total_steps=steps)
    gen = torch.Generator().manual_seed(hyper["seed"])
    for epoch in range(hyper["epochs"]):
        net.train()
        order = torch.randperm(len(y), generator=gen)
        for k in range(len(y) // hyper["batch_size"]):
            idx = order[k * hyper["batch_size"]:(k + 1) * hyper["batch_size"]]
            batch = x[idx]
            if torch.rand(1, generator=gen).item() < 0.5:  # a small shift: crops are centred by mass, not exactly
                batch = torch.roll(batch, shifts=(int(torch.randint(-1, 2, (1,), generator=gen)),
                                                  int(torch.randint(-1, 2, (1,), generator=gen))), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(net(batch, f[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{hyper['epochs']} loss {loss.item():.4f}", flush=True)
    net.eval()
    with torch.no_grad():
        probs = torch.softmax(net(torch.from_numpy(val_set["crops"])[:, None],
                                  torch.from_numpy(val_set["features"])), 1).numpy()
    labels = val_set["labels"]
    digit_p = probs[labels == 0, 0]
    threshold = float(np.sort(digit_p)[int((1 - DIGITS_KEPT) * len(digit_p))])  # keeps DIGITS_KEPT of them
    threshold = min(threshold, 0.5)
    refused = probs[:, 0] < threshold
    report = {"threshold": threshold, "val_examples": len(labels),
              "digits_kept": float(1 - refused[labels == 0].mean()),
              "non_digits_refused": float(refused[labels != 0].mean()),
              "by_class": {c: float((refused if c != "digit" else ~refused)[labels == i].mean())
                           for i, c in enumerate(CLASSES)},
              "kind_right": float((probs[labels != 0, 1:].argmax(1) + 1 == labels[labels != 0]).mean()),
              "params": sum(p.numel() for p in net.parameters()), "generate_s": round(generated, 1),
              "seconds": round(time.time() - started, 1), "hyper": hyper}
    export(net, out, {"threshold": f"{threshold:.6f}", "classes": json.dumps(list(CLASSES)),
                      "validation": json.dumps({k: v for k, v in report.items() if k != "hyper"})})
    report["threshold_flag"] = set_flag_threshold(out, probs, labels)
    report["threshold_mnist"] = calibrate_mnist(out, data_dir)
    return report


def set_flag_threshold(path: Path, probs: np.ndarray, labels: np.ndarray) -> float:
    """Set (and write into the file) the chance of "digit" under which a mark read is flagged: DIGITS_UNFLAGGED of
    the validation digits (`probs`, `labels`: the gate on its validation set) are above it."""
    from mnist_tiny.reader.gate import Gate

    digit_p = np.sort(probs[labels == 0, 0])
    value = float(min(max(digit_p[int((1 - DIGITS_UNFLAGGED) * len(digit_p))], Gate(path).threshold), 0.5))
    set_meta(path, "threshold_flag", value)
    return value


def flag_only(path: Path, data_dir: Path, hyper: dict) -> dict:
    """`threshold_flag` for a gate already trained: its validation set made again (the same seed, so the same
    crops), the refusal threshold checked against the one in the file."""
    from mnist_tiny.reader.gate import Gate
    from mnist_tiny.reader.gate_data import make

    val_set = make(hyper["val_examples"], hyper["seed"] + 1001, True, data_dir)
    gate = Gate(path)
    probs = gate(val_set["crops"], val_set["features"])
    labels = val_set["labels"]
    digit_p = np.sort(probs[labels == 0, 0])
    again = float(min(digit_p[int((1 - DIGITS_KEPT) * len(digit_p))], 0.5))
    if abs(again - gate.threshold) > 1e-5:
        raise SystemExit(f"{path}: its validation set was not made again (threshold {again:.6f}, the file's "
                         f"{gate.threshold:.6f}); retrain it")
    value = set_flag_threshold(path, probs, labels)
    flagged = probs[:, 0] < value
    return {"threshold": gate.threshold, "threshold_flag": value,
            "digits_unflagged": float(1 - flagged[labels == 0].mean()),
            "non_digits_refused_or_flagged": float(flagged[labels != 0].mean())}


def calibrate_mnist(path: Path, data_dir: Path) -> float:
    """Set (and write into the file) the threshold for images in MNIST's own format."""
    from mnist_tiny.data.mnist import load_mnist
    from mnist_tiny.reader.gate import Gate
    from mnist_tiny.reader.gate_data import seen

    images = load_mnist(Path(data_dir), False, test=False)["train"].images[55_000:].numpy()
    crops, feats = zip(*(seen(image.astype(np.float32) / 255) for image in images))
    gate = Gate(path)
    chance = np.sort(gate(np.stack(crops), np.stack(feats))[:, 0])
    value = float(min(gate.threshold, chance[0] / 2))  # below every one of the 5,000 held-out MNIST digits
    set_meta(path, "threshold_mnist", value)
    return value


def export(net, out: Path, meta: dict) -> None:
    import torch

    from mnist_tiny.reader.gate import N_FEATURES

    write_onnx(net, out, (torch.zeros(2, 1, 28, 28), torch.zeros(2, N_FEATURES)),
               {"inputs": ["crop", "features"], "outputs": ["logits"]},
               {"crop": {0: "N"}, "features": {0: "N"}, "logits": {0: "N"}}, meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MNIST_TINY_DATA_DIR", "data")))
    for key, value in HYPER.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--flag-only", action="store_true", help="only set threshold_flag in the --out file")
    args = parser.parse_args()
    hyper = {k: getattr(args, k) for k in HYPER}
    if args.flag_only:
        print(json.dumps(flag_only(args.out, args.data_dir, hyper), indent=1))
        return
    print(json.dumps(train(args.data_dir, args.out, hyper), indent=1))


if __name__ == "__main__":
    main()
