"""The search space of `mnist-tiny tune`: which settings a trial varies, and over what.

Every key is a Settings field, so a trial is an ordinary `train` run. The default suits tiny CNNs on MNIST (the
ranges our own recipes came from); a TOML file replaces any part of it:

    [lr]                       # a float range; log = true samples it on a log scale
    low = 0.02
    high = 0.4
    log = true
    [batch_size]               # a list of choices
    choices = [64, 128]
    [rotate]                   # fix a value for every trial
    value = 10.0
    [ema]                      # or leave a key out of the search altogether
    skip = true
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from mnist_tiny.errors import UserError

# name → spec; "epochs" is bounded by `--epochs` (the budget) where the search runs.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "lr": {"low": 0.02, "high": 0.4, "log": True},
    "scheduler": {"choices": ["onecycle", "cosine"]},
    "batch_size": {"choices": [64, 128, 256]},
    "weight_decay": {"low": 1e-5, "high": 1e-3, "log": True},
    "warmup": {"low": 0.05, "high": 0.4},
    "label_smoothing": {"low": 0.0, "high": 0.15},
    "rotate": {"low": 0.0, "high": 15.0},
    "translate": {"low": 0.0, "high": 0.12},
    "scale": {"low": 0.0, "high": 0.12},
    "ema": {"choices": [0.0, 0.99, 0.999]},
}
KEYS = {"low", "high", "log", "step", "choices", "value", "skip"}


def load_space(path: Path | None, epochs: int | None) -> dict[str, dict[str, Any]]:
    """The default space, with a TOML file's tables over it, checked: every key a setting, every range possible,
    every value one the setting takes (a trial's settings are validated before it runs, too)."""
    from mnist_tiny.settings import FIELDS

    space = {k: dict(v) for k, v in DEFAULT_SPACE.items()}
    if epochs is not None and epochs > 1:  # the budget: trials train between half of it and all of it
        space["epochs"] = {"low": max(1, epochs // 2), "high": epochs, "step": 1}
    if path is not None:
        label = f"--space {path}"
        for key, spec in _read_space(Path(path), label).items():
            if key not in FIELDS:
                close = difflib.get_close_matches(key, FIELDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UserError(f"{label}: [{key}] is not a setting{hint}", 2)
            if not isinstance(spec, dict) or not spec or set(spec) - KEYS:
                extra = sorted(set(spec) - KEYS) if isinstance(spec, dict) else []
                raise UserError(f"{label}: [{key}] needs low/high (with log or step), choices, value or skip"
                                + (f"; unknown: {', '.join(extra)}" if extra else ""), 2)
            if spec.get("skip"):
                space.pop(key, None)
                continue
            space[key] = spec
    for key, spec in space.items():
        _check(key, spec, f"--space {path}" if path else "the default space")
    return space


def _read_space(path: Path, label: str) -> dict[str, Any]:
    """The space file's tables: a regular UTF-8 TOML file of sane size; every failure one line naming it."""
    import stat

    from mnist_tiny.settings import tomllib

    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{label}: not a regular file", 2)
        if info.st_size > 100_000:
            raise UserError(f"{label}: {info.st_size:,} bytes is too large for a search space", 2)
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{label}: no such file", 2) from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{label}: cannot read ({getattr(e, 'strerror', None) or e})", 2) from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{label}: invalid TOML ({e})", 2) from None
    except RecursionError:
        raise UserError(f"{label}: invalid TOML (nested too deeply)", 2) from None


def _check(key: str, spec: dict[str, Any], label: str) -> None:
    if "value" in spec:
        return _valid(key, spec["value"], label)
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise UserError(f"{label}: [{key}] choices must be a non-empty list", 2)
        for choice in spec["choices"]:
            _valid(key, choice, label)
        return None
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise UserError(f"{label}: [{key}] needs numbers low and high", 2)
    if low > high:
        raise UserError(f"{label}: [{key}] low {low} is above high {high}: an impossible range", 2)
    if spec.get("log") and low <= 0:
        raise UserError(f"{label}: [{key}] a log range needs low > 0 (got {low})", 2)
    _valid(key, low, label)
    _valid(key, high, label)
    return None


def _valid(key: str, value: Any, label: str) -> None:
    """The value must be one the setting takes (Settings' own bounds: lr > 0, rotate ≤ 180, …)."""
    from pydantic import ValidationError

    from mnist_tiny.settings import Settings

    try:
        Settings.model_validate({key: value})
    except ValidationError as e:
        raise UserError(f"{label}: [{key}] {value!r} is not a value of {key}: {e.errors()[0]['msg']}", 2) from None


def within(spec: dict[str, Any], value: Any) -> bool:
    """Whether a recipe's own value lies in a key's searched range (so it can be a trial of the search)."""
    if "value" in spec:
        return value == spec["value"]
    if "choices" in spec:
        return value in spec["choices"]
    return isinstance(value, (int, float)) and spec["low"] <= value <= spec["high"]


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One trial's values, asked of Optuna's sampler."""
    values = {}
    for key, spec in space.items():
        if "value" in spec:
            values[key] = spec["value"]
        elif "choices" in spec:
            values[key] = trial.suggest_categorical(key, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log") \
                and isinstance(spec.get("step", 1), int):
            values[key] = trial.suggest_int(key, spec["low"], spec["high"], step=spec.get("step", 1))
        else:
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")),
                                              step=spec.get("step"))
    return values
