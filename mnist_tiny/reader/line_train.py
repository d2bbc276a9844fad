"""Train the reader's line reader: a small fully convolutional network read with CTC along a row of digits, written
as ONNX (`reader/lines.onnx`):

    MNIST_TINY_DATA_DIR=../shared/data python -m mnist_tiny.reader.line_train --out mnist_tiny/reader/lines.onnx

Data: `reader.line_data` (rows composed from MNIST training digits 0–54,999 and drawn ones; validation rows from
55,000–59,999 and other seeds). Needs `[train]`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mnist_tiny.reader.line import BLANK, decode
from mnist_tiny.reader.onnx_files import write_onnx

HYPER = {
    "train_rows": 80_000,  # generated once, in memory
    "val_rows": 3_000,
    "epochs": 6,
    "batch_size": 64,
    "lr": 3e-3,  # AdamW, one-cycle
    "weight_decay": 1e-4,
    "seed": 0,
}


def build():
    import torch
    from torch import nn

    from mnist_tiny.reader.line_data import LINE_HEIGHT

    assert LINE_HEIGHT == 28

    class LineNet(nn.Module):
        """28×W ink → W/2 steps × 11 (ten digits and CTC's blank): three 3×3 blocks that halve the height (the
        first the width too), a 3×3 that takes the last 3 rows to one, a 1×5 for context along the row."""

        def __init__(self):
            super().__init__()

            def block(cin, cout, pool):
                return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                        nn.MaxPool2d(pool)]

            self.body = nn.Sequential(
                *block(1, 24, (2, 2)), *block(24, 48, (2, 1)), *block(48, 64, (2, 1)),  # 28 → 14 → 7 → 3 rows
                nn.Conv2d(64, 96, 3, padding=(0, 1), bias=False), nn.BatchNorm2d(96), nn.ReLU(),  # → 1 row
                nn.Conv2d(96, 96, (1, 5), padding=(0, 2), bias=False), nn.BatchNorm2d(96), nn.ReLU(),
                nn.Conv2d(96, 11, 1))

        def forward(self, line):
            return self.body(line).squeeze(2).transpose(1, 2)  # N × T × 11

    return LineNet()


def _batches(widths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Rows of about the same width together (little padding), the batches in random order."""
    order = np.argsort(widths + rng.uniform(0, 8, len(widths)), kind="stable")
    batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _stack(lines: list[np.ndarray], index: np.ndarray):
    import torch

    width = max(lines[i].shape[1] for i in index)
    width += width % 2
    x = np.zeros((len(index), 1, 28, width), np.float32)
    for n, i in enumerate(index):
        x[n, 0, :, :lines[i].shape[1]] = lines[i]
    return torch.from_numpy(x), torch.tensor([(lines[i].shape[1] + 1) // 2 for i in index])


def evaluate(net, lines, texts, batch_size: int = 256) -> float:
    import torch

    net.eval()
    right = 0
    with torch.no_grad():
        for k in range(0, len(lines), batch_size):
            index = np.arange(k, min(k + batch_size, len(lines)))
            x, steps = _stack(lines, index)
            out = net(x).numpy()
            right += sum(decode(out[n, :int(steps[n])]).digits == texts[i] for n, i in enumerate(index))
    return right / len(lines)


def train(data_dir: Path, out: Path, hyper: dict) -> dict:
    import torch

    from mnist_tiny.reader.line_data import make

    started = time.time()
    torch.manual_seed(hyper["seed"])
    rng = np.random.default_rng(hyper["seed"])
    lines, texts = make(hyper["train_rows"], hyper["seed"] + 1, False, data_dir)
    val_lines, val_texts = make(hyper["val_rows"], hyper["seed"] + 1001, True, data_dir)
    generated = time.time() - started
    widths = np.array([line.shape[1] for line in lines])
    net = build()
    opt = torch.optim.AdamW(net.parameters(), lr=hyper["lr"], weight_decay=hyper["weight_decay"])
    per_epoch = len(_batches(widths, hyper["batch_size"], rng))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, hyper["lr"], total_steps=hyper["epochs"] * per_epoch)
    ctc = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)
    for epoch in range(hyper["epochs"]):
        net.train()
        for index in _batches(widths, hyper["batch_size"], rng):
            x, steps = _stack(lines, index)
            targets = torch.tensor([d for i in index for d in texts[i]])
            lengths = torch.tensor([len(texts[i]) for i in index])
            logp = torch.log_softmax(net(x), 2).transpose(0, 1)  # T × N × 11
            loss = ctc(logp, targets, steps, lengths)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{hyper['epochs']} loss {loss.item():.4f} "
              f"val {evaluate(net, val_lines, val_texts):.4f} ({time.time() - started:.0f} s)", flush=True)
    report = {"val_rows_exact": evaluate(net, val_lines, val_texts), "val_rows": len(val_lines),
              "params": sum(p.numel() for p in net.parameters()), "generate_s": round(generated, 1),
              "seconds": round(time.time() - started, 1), "hyper": hyper}
    export(net, out, {"validation": json.dumps({k: v for k, v in report.items() if k != "hyper"})})
    return report


def export(net, out: Path, meta: dict) -> None:
    import torch

    write_onnx(net, out, (torch.zeros(2, 1, 28, 64),), {"inputs": ["line"], "outputs": ["logits"]},
               {"line": {0: "N", 3: "W"}, "logits": {0: "N", 1: "T"}}, meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MNIST_TINY_DATA_DIR", "data")))
    for key, value in HYPER.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args()
    hyper = {k: getattr(args, k) for k in HYPER}
    print(json.dumps(train(args.data_dir, args.out, hyper), indent=1))


if __name__ == "__main__":
    main()
