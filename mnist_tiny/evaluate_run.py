"""`mnist-tiny eval`: load the split a checkpoint should be scored on, score it, optionally write a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .checkpoint import Checkpoint, recorded_settings
from .data import load_mnist, train_val_split
from .device import prepare_model, resolve_device
from .errors import UserError
from .evaluate import evaluate
from .registry import count_params
from .settings import Settings


def eval_split(loaded: Checkpoint, settings: Settings, split: str):
    """The test set, or the same train/val split the checkpoint was trained with (its recorded seed and size)."""
    splits = load_mnist(settings.data_dir, settings.download, settings.mirror, settings.verify_data)
    if split == "test":
        return splits["test"]
    recorded = recorded_settings(loaded.raw, loaded.path)
    split_settings = {k: recorded[k] for k in ("val_size", "seed", "subset") if k in recorded}
    try:
        used = Settings.model_validate(split_settings)
    except ValidationError as e:
        first = e.errors()[0]
        raise UserError(f"checkpoint {loaded.path}: its recorded {first['loc'][0]} = {first.get('input')!r} is "
                        f"invalid ({first['msg']}); cannot rebuild the {split} split it trained on") from None
    if not split_settings:
        raise UserError(f"checkpoint {loaded.path}: records no training settings, so its {split} split is "
                        "unknown; score it on --split test", 2)
    train, val = train_val_split(splits["train"], used.val_size, used.seed, used.subset)
    return val if split == "val" else train


def run_eval(loaded: Checkpoint, settings: Settings, split: str = "test", report: Path | None = None) -> dict[str, Any]:
    device = resolve_device(settings.device)
    data = eval_split(loaded, settings, split)
    params = count_params(loaded.model)  # before `prepare_model` folds BatchNorm into the convs (fewer tensors)
    result = evaluate(prepare_model(loaded.model, device), data.images, data.labels, device, settings.eval_batch_size)
    result = {"model": loaded.name, "params": params, "checkpoint": str(loaded.path),
              "split": split, **result}
    if report is not None:
        write_report(result, data.images, Path(report))
        result["report"] = str(report)
    return result


def write_report(result: dict[str, Any], images, out: Path) -> None:
    from .plots import confusion_heatmap, error_grid

    if out.exists() and not out.is_dir():
        raise UserError(f"--report {out}: exists and is not a directory", 2)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{result['model']} · {result['split']} · accuracy {100 * result['accuracy']:.2f}% ({result['errors']} errors)"
    confusion_heatmap(result["confusion"], out / "confusion.png", title)
    error_grid(images, result["misclassified"], out / "errors.png", title)
    (out / "metrics.json").write_text(json.dumps({k: v for k, v in result.items() if k != "report"}, indent=2) + "\n")
