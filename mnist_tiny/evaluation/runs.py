"""`mnist-tiny runs`: the run directories under some folders, side by side, as plain rows.

A run directory is one with a settings.json written by `train`; a folder may hold runs at any depth (a `--seeds`
sweep keeps one per seed). Finished runs report their summary.json; runs in progress or interrupted report the
epochs in metrics.jsonl. A run whose files cannot be read is a row with an error, never the end of the listing.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any, Iterable

MAX_FILE_BYTES = 10 << 20  # a run's JSON files are kilobytes; anything far larger is not one of ours
MAX_DEPTH = 4
SORT_KEYS = {"val": "best_val_acc", "test": "best_test_acc", "time": "train_seconds", "params": "params",
             "name": "run"}


def find_runs(paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """(run directory, short name) at or under `paths`, each run once; symlinked folders are not followed."""
    found: dict[str, tuple[Path, str]] = {}
    for root in map(Path, paths):
        for current, dirs, files in os.walk(root):
            here = Path(current)
            if "settings.json" in files:
                name = os.path.normpath(root.name / here.relative_to(root)) if here != root else root.name or str(root)
                found.setdefault(os.path.realpath(here), (here, name))
                dirs[:] = []
            elif len(here.relative_to(root).parts) >= MAX_DEPTH:
                dirs[:] = []
            dirs.sort()
    return list(found.values())


def _regular(path: Path) -> None:
    """A FIFO named settings.json would block the listing for ever, a device would never end: regular files only."""
    import stat

    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path.name} is not a regular file")


def _read_json(path: Path) -> Any:
    _regular(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_FILE_BYTES:,} bytes")
    return json.loads(path.read_text(encoding="utf-8"))


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    _regular(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_FILE_BYTES:,} bytes")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if isinstance(row, dict) and isinstance(row.get("epoch"), int):
                rows.append(row)
    by_epoch = {row["epoch"]: row for row in rows}  # a row repeated by an old crash counts once
    return [by_epoch[e] for e in sorted(by_epoch)]


def read_run(run: Path, name: str | None = None) -> dict[str, Any]:
    """One row: what the run trained, how far it got, and its figures (validation chose, test only reports).
    Whatever is wrong in a run's files makes its own row an error and touches no other row."""
    try:
        return _read_run(run, name)
    except Exception as e:  # noqa: BLE001 — a run folder is data: its oddities are its row's, never the listing's
        return {"run": str(run), "name": name or run.name, "error": f"cannot read: {type(e).__name__}: {e}"}


NUMBERS = ("params", "best_epoch", "best_val_acc", "best_test_acc", "last_test_acc", "train_seconds", "processes")


def _number(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _read_run(run: Path, name: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"run": str(run), "name": name or run.name}
    try:
        settings = _read_json(run / "settings.json")
        if not isinstance(settings, dict):
            raise ValueError("settings.json holds no settings")
        summary = _read_json(run / "summary.json") if (run / "summary.json").is_file() else None
        history = summary.get("history") if isinstance(summary, dict) else None
        history = history if isinstance(history, list) else _read_history(run / "metrics.jsonl")
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return {**row, "error": f"cannot read: {e}"}
    if not all(isinstance(r, dict) and isinstance(r.get("epoch"), int) for r in history):
        return {**row, "error": "cannot read: its history holds rows that are not epochs"}
    epochs = _number(settings.get("epochs"))
    subset, val_size = _number(settings.get("subset")), _number(settings.get("val_size"))
    train_images = (60_000 - val_size) if isinstance(val_size, int) else None
    if isinstance(subset, int) and train_images is not None:
        train_images = min(subset, train_images)
    model = settings.get("model")
    row.update(model=model if isinstance(model, str) else None, seed=_number(settings.get("seed")), epochs=epochs, epochs_done=len(history),
               train_images=train_images, val_images=val_size, history=history,
               status="finished" if summary else ("interrupted" if history or (run / "last.pt").exists()
                                                  else "started"))
    vals = [r["val_acc"] for r in history if _number(r.get("val_acc")) is not None]
    best = max(range(len(vals)), key=lambda i: (vals[i], i)) if vals else None  # ties: the later, as train does
    row.update(best_epoch=best + 1 if best is not None else None, best_val_acc=vals[best] if vals else None,
               last_val_acc=vals[-1] if vals else None,
               train_seconds=sum(_number(r.get("seconds")) or 0 for r in history) if history else None)
    if isinstance(summary, dict):
        for key in NUMBERS:
            row[key] = _number(summary.get(key))
    return row


def list_runs(paths: Iterable[Path], sort: str = "val") -> list[dict[str, Any]]:
    """Rows for every run under `paths`, best first by `sort` (val: best validation accuracy; name: path order)."""
    rows = [read_run(run, name) for run, name in find_runs(paths)]
    key = SORT_KEYS[sort]
    if sort == "name":
        return sorted(rows, key=lambda r: r["run"])
    if sort == "time":
        return sorted(rows, key=lambda r: (r.get(key) is None, r.get(key) or 0))
    return sorted(rows, key=lambda r: (r.get(key) is None, -(r.get(key) or 0)))


def sweep_stats(summaries: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean, sample standard deviation, min and max over a seed sweep's runs."""
    result = {}
    for key in ("last_test_acc", "last_val_acc", "best_val_acc", "best_test_acc", "train_seconds"):
        values = [s[key] for s in summaries if s.get(key) is not None]
        if not values:  # a run with settings.test false has no test figures
            continue
        result[key] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                       "min": min(values), "max": max(values)}
    return result
