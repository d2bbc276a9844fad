"""`mnist-tiny eval`: load the split a checkpoint should be scored on, score it, optionally write a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mnist_tiny.data.mnist import load_mnist, train_val_split
from mnist_tiny.device import resolve_device
from mnist_tiny.errors import UserError
from mnist_tiny.evaluation.metrics import evaluate, logits_for
from mnist_tiny.fast import prepare
from mnist_tiny.models.registry import count_params
from mnist_tiny.settings import Settings, data_dir_for
from mnist_tiny.training.checkpoint import Checkpoint, recorded_settings


def eval_split(loaded: Checkpoint, settings: Settings, split: str):
    """The test set, or the same train/val split the checkpoint was trained with (its recorded seed and size)."""
    splits = load_mnist(settings.data_dir, settings.download, settings.mirror, settings.verify_data)
    if split == "test":
        return splits["test"]
    recorded = recorded_settings(loaded.raw, loaded.path)
    split_settings = {k: recorded[k] for k in ("val_size", "seed", "split_seed", "subset") if k in recorded}
    try:
        used = Settings.model_validate(split_settings)
    except ValidationError as e:
        first = e.errors()[0]
        raise UserError(f"checkpoint {loaded.path}: its recorded {first['loc'][0]} = {first.get('input')!r} is "
                        f"invalid ({first['msg']}); cannot rebuild the {split} split it trained on") from None
    if not split_settings:
        raise UserError(f"checkpoint {loaded.path}: records no training settings, so its {split} split is "
                        "unknown; score it on --split test", 2)
    train, val = train_val_split(splits["train"], used.val_size, used.val_seed, used.subset)
    return val if split == "val" else train


def run_eval(loaded: Checkpoint, settings: Settings, split: str = "test", report: Path | None = None) -> dict[str, Any]:
    if report is not None:
        check_report_dir(Path(report))
    settings = settings.model_copy(update={"data_dir": data_dir_for(settings, loaded.settings.get("data_dir"))})
    device = resolve_device(settings.device)
    data = eval_split(loaded, settings, split)
    params = count_params(loaded.model)  # before `prepare_model` folds BatchNorm into the convs (fewer tensors)
    model = prepare(loaded.model, device)
    logits = logits_for(model, data.images, device, settings.eval_batch_size)
    result = evaluate(logits, data.labels)
    result = {"model": loaded.name, "params": params, "checkpoint": str(loaded.path),
              "split": split, **result}
    if report is not None:
        result["calibration"] = calibration(loaded, model, logits, data.labels, settings, split, device)
        write_report(result, data.images, Path(report))
        result["report"] = str(report)
    return result


def calibration(loaded: Checkpoint, model, logits, labels, settings: Settings, split: str, device) -> dict[str, Any]:
    """The split's reliability (its `logits` from the prepared `model`) with the raw softmax and with the
    checkpoint's temperature (recorded when its training finished; else fitted now on its own validation split,
    never on the split being scored)."""
    from mnist_tiny.evaluation.calibration import fit_temperature, reliability, usable_temperature
    from mnist_tiny.reader.predict import softmax

    logits, labels = logits.double().numpy(), labels.numpy()
    out: dict[str, Any] = {"raw": reliability(softmax(logits), labels)}
    temperature = usable_temperature(loaded.raw.get("temperature"))
    source = "recorded in the checkpoint (fitted on its validation split)"
    if temperature is None and split != "val":
        try:
            val = eval_split(loaded, settings, "val")
            val_logits = logits_for(model, val.images, device, settings.eval_batch_size).double().numpy()
            temperature, source = fit_temperature(val_logits, val.labels.numpy()), "fitted now on its validation split"
        except UserError:
            temperature = None
    if temperature is not None:
        out.update(temperature=temperature, temperature_source=source,
                   calibrated=reliability(softmax(logits / temperature), labels))
    return out


REPORT_FILES = ("confusion.png", "errors.png", "reliability.png", "metrics.json")


def check_report_dir(out: Path) -> None:
    """A report goes into a new directory, or one that holds none of its files: it never overwrites."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--report {out}: exists and is not a directory", 2)
    taken = [name for name in REPORT_FILES if (out / name).exists()]
    if taken:
        raise UserError(f"--report {out}: already holds {', '.join(taken)}; choose a new directory "
                        "(a report never overwrites files)", 2)


def write_report(result: dict[str, Any], images, out: Path) -> None:
    from mnist_tiny.ui.plots import confusion_heatmap, error_grid, reliability_diagram

    check_report_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{result['model']} · {result['split']} · accuracy {100 * result['accuracy']:.2f}% ({result['errors']} errors)"
    confusion_heatmap(result["confusion"], out / "confusion.png", title)
    error_grid(images, result["misclassified"], out / "errors.png", title)
    cal = result["calibration"]
    curves = [("raw softmax", cal["raw"])] + ([(f"temperature {cal['temperature']:.2f}", cal["calibrated"])]
                                              if "calibrated" in cal else [])
    reliability_diagram(curves, out / "reliability.png", f"{result['model']} · {result['split']} · reliability")
    (out / "metrics.json").write_text(json.dumps({k: v for k, v in result.items() if k != "report"}, indent=2) + "\n")
