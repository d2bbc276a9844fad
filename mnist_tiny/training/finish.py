"""The end of a run: score the best and the last checkpoint on the test set (reported, never used to choose),
write summary.json and draw the curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnist_tiny.errors import UserError
from mnist_tiny.evaluation.calibration import fit_temperature
from mnist_tiny.evaluation.metrics import logits_for, loss_and_accuracy
from mnist_tiny.fast import prepare
from mnist_tiny.settings import Settings
from mnist_tiny.training import rundir
from mnist_tiny.training.checkpoint import load_checkpoint, read_checkpoint, save_atomic
from mnist_tiny.ui.plots import training_curves


def finish(out: Path, s: Settings, test_split, device, history, best, params: int,
           processes: int = 1, val_split=None) -> dict[str, Any]:
    """Score the best and the last checkpoint on the test set (reported, never used to choose), fit each one's
    temperature on the validation split (recorded in the checkpoint: `predict` reads with it) and draw curves."""
    results = {}
    for kind in ("best", "last"):
        if kind == "last" and best["epoch"] == len(history):  # the same weights: score them once
            results["last"] = results["best"]
            _record_temperature(out / "last.pt", results["best"]["temperature"])
            continue
        loaded = load_checkpoint(out / f"{kind}.pt", s.model)
        _check_same_run(loaded, kind, s, best["epoch"] if kind == "best" else len(history))
        model = prepare(loaded.model, device)
        results[kind] = {"temperature": None}
        if test_split is not None:  # None: a search's run, which never reads the test set
            loss, acc = loss_and_accuracy(model, test_split.images, test_split.labels, device, s.eval_batch_size)
            results[kind].update(test_loss=loss, test_acc=acc)
        if val_split is not None and len(val_split):
            val_logits = logits_for(model, val_split.images, device, s.eval_batch_size).double().numpy()
            results[kind]["temperature"] = fit_temperature(val_logits, val_split.labels.numpy())
            _record_temperature(out / f"{kind}.pt", results[kind]["temperature"])
    summary = {
        "model": s.model, "params": params, "epochs": s.epochs, "seed": s.seed, "processes": processes,
        "out": str(out),
        "best_epoch": best["epoch"], "best_val_acc": best["val_acc"],
        **({"best_test_acc": results["best"]["test_acc"], "last_test_acc": results["last"]["test_acc"]}
           if test_split is not None else {}),
        "last_val_acc": history[-1]["val_acc"], "train_seconds": sum(r["seconds"] for r in history),
        "temperature": {k: results[k]["temperature"] for k in ("best", "last")},
        "history": history,
    }
    rundir.write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    training_curves(history, out / "curves.png", title=f"{rundir.run_name(s.model)} · seed {s.seed}")
    return summary


def _record_temperature(path: Path, temperature: float | None) -> None:
    """Write the fitted temperature into the checkpoint (atomically: the old file stays until the new is whole)."""
    if temperature is None:
        return
    raw = read_checkpoint(path)
    if raw.get("temperature") != temperature:
        raw["temperature"] = temperature
        save_atomic(raw, path)


def _check_same_run(loaded, kind: str, s: Settings, epoch: int) -> None:
    """A best.pt/last.pt that another run left (or a user copied) here must not be scored as this run's."""
    mine = s.model_dump(mode="json")
    theirs = loaded.settings if isinstance(loaded.settings, dict) else {}
    differ = [k for k in mine if k not in rundir.RESUME_MAY_CHANGE and theirs.get(k) != mine[k]]
    if differ or (loaded.metrics or {}).get("epoch") != epoch:
        raise UserError(f"{loaded.path}: not this run's {kind} checkpoint (it records "
                        f"{'other settings: ' + ', '.join(differ[:5]) if differ else 'another epoch'}); "
                        "nothing was scored")
