"""Maintainers' tool: turn a seed sweep into the weights that ship inside the package.

    python -m mnist_tiny.release runs/<model>-seeds-1-2-3-4-5 --command "mnist-tiny train --model M --seeds 1,2,3,4,5"

Of the sweep's runs, the one with the best *validation* accuracy is shipped (the test set never chooses); its
test accuracy is measured again here and recorded with the sweep's mean ± std, the recipe and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch

from .checkpoint import FORMAT, load_checkpoint, save_atomic, versions
from .data import load_mnist
from .evaluate import loss_and_accuracy
from .registry import count_params, get_spec
from .settings import default_data_dir
from .summary import summarize


def release(sweep_dir: Path, command: str, data_dir: Path) -> Path:
    files = sorted(Path(sweep_dir).glob("seed-*/summary.json")) or sorted(Path(sweep_dir).glob("summary.json"))
    summaries = [json.loads(p.read_text()) for p in files]
    if not summaries:
        raise SystemExit(f"no seed-*/summary.json under {sweep_dir}")
    chosen = max(summaries, key=lambda s: (s["best_val_acc"], -s["seed"]))
    loaded = load_checkpoint(Path(chosen["out"]) / "best.pt")
    test = load_mnist(data_dir, download_missing=False)["test"]
    _, test_acc = loss_and_accuracy(loaded.model, test.images, test.labels, torch.device("cpu"))
    tests = [s["best_test_acc"] for s in summaries]
    meta = {
        "params": count_params(loaded.model), "macs": summarize(loaded.model)["macs"],
        "test_acc": test_acc, "val_acc": chosen["best_val_acc"], "epoch": chosen["best_epoch"],
        "epochs": chosen["epochs"], "seed": chosen["seed"], "recipe": loaded.settings, "command": command,
        "sweep": {"seeds": [s["seed"] for s in summaries], "test_acc": tests, "mean": statistics.fmean(tests),
                  "std": statistics.stdev(tests) if len(tests) > 1 else 0.0, "min": min(tests),
                  "train_seconds": statistics.fmean(s["train_seconds"] for s in summaries)},
    }
    spec = get_spec(loaded.name)
    settings = {k: v for k, v in loaded.settings.items() if k not in ("data_dir", "out")}
    save_atomic({"format": FORMAT, "model": loaded.name, "state_dict": loaded.model.state_dict(),
                 "settings": settings, "metrics": loaded.metrics, "versions": versions(), "meta": meta},
                spec.weights_path)
    print(json.dumps({"shipped": str(spec.weights_path), **{k: v for k, v in meta.items() if k != "recipe"}}, indent=2))
    return spec.weights_path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--command", required=True, help="the exact command that produced the sweep")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data = args.data_dir or Path(os.environ.get("MNIST_TINY_DATA_DIR") or default_data_dir())
    release(args.sweep_dir, args.command, data)
