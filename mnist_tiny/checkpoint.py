"""Checkpoints: written atomically, loaded with `torch.load(weights_only=True)` so a file can never run code.

A checkpoint is a plain dict: {"format", "model", "state_dict", "settings", "metrics", "versions", ...}; a
training checkpoint (`last.pt`) also carries what `--resume` needs (optimizer, RNG states, position in the epoch).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import UserError, require_nonempty_file

FORMAT = "mnist-tiny/1"


def versions() -> dict[str, str]:
    from . import __version__

    return {"mnist_tiny": __version__, "torch": str(torch.__version__)}


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: a crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the user's usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load the raw dict safely; every way a file can be wrong becomes one UserError naming it."""
    path = require_nonempty_file(path, f"checkpoint {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # not a pickle of objects at all (text, random bytes)
            raise UserError(f"checkpoint {path}: not a readable PyTorch checkpoint (wrong format: {_short(e)})") from None
        # weights_only refuses any global it does not allow-list, so a code payload never runs.
        lines = [ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln]
        detail = lines[0].split(" was not")[0].strip()[:160] if lines else "unsupported object"
        raise UserError(f"checkpoint {path}: refused to load: it holds objects other than tensors ({detail})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError) as e:
        raise UserError(f"checkpoint {path}: not a readable PyTorch checkpoint (truncated or wrong format: {_short(e)})") from None
    if not isinstance(data, dict) or "state_dict" not in data or "model" not in data:
        raise UserError(f"checkpoint {path}: not a mnist-tiny checkpoint (no model name and state dict)")
    return data


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


@dataclass
class Checkpoint:
    path: Path
    model: torch.nn.Module
    name: str
    settings: dict[str, Any]
    metrics: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def load_checkpoint(path: Path) -> Checkpoint:
    """Rebuild the model a checkpoint names and load its weights (strictly: every tensor must fit)."""
    from .registry import get_spec

    data = read_checkpoint(path)
    name = data["model"]
    if not isinstance(name, str):
        raise UserError(f"checkpoint {path}: model name is not a string")
    try:
        spec = get_spec(name)
    except UserError as e:
        raise UserError(f"checkpoint {path}: {e}") from None
    model = spec.builder()
    try:
        model.load_state_dict(data["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as e:
        detail = " ".join(str(e).split())[:200]
        raise UserError(f"checkpoint {path}: weights do not fit model {name!r} ({detail})") from None
    model.eval()
    return Checkpoint(Path(path), model, name, data.get("settings") or {}, data.get("metrics") or {},
                      data.get("meta") or {}, data)
