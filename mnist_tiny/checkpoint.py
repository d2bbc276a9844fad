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
    """Load the raw dict safely; every way a file can be wrong becomes one UserError naming it.

    A bare state dict (what `torch.save(model.state_dict())` writes, or a training script's
    `{"model_state_dict": ...}`) comes back as `{"state_dict": ..., "bare": True}`: it names no model."""
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
    if isinstance(data, dict) and "state_dict" in data and "model" in data:
        return data
    bare = _bare_state_dict(data)
    if bare is None:
        raise UserError(f"checkpoint {path}: not a mnist-tiny checkpoint or a state dict (no model name and weights)")
    return {"state_dict": bare, "bare": True}


def _bare_state_dict(data: Any) -> dict[str, torch.Tensor] | None:
    """The tensors of `model.state_dict()` saved alone or under a usual key; DDP's `module.` prefix removed."""
    if isinstance(data, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not all(isinstance(k, str) and torch.is_tensor(v)
                                                           for k, v in data.items()):
        return None
    if all(k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}
    return dict(data)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else type(e).__name__


@dataclass
class Checkpoint:
    path: Path
    model: torch.nn.Module
    name: str  # the model reference, as recorded or as given
    settings: dict[str, Any]
    metrics: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    source: Any = None  # the resolved `modelref.ModelSource`
    input_scaling: str = "unit"


def source_record(data: dict[str, Any]) -> dict[str, Any] | None:
    """What a checkpoint says about a user's model (None for a registry model)."""
    record = data.get("source")
    return record if isinstance(record, dict) and record.get("kind") not in (None, "registry") else None


def load_checkpoint(path: Path, model: str | None = None, input_scaling: str | None = None,
                    warn=None) -> Checkpoint:
    """Rebuild a checkpoint's model and load its weights (strictly: every tensor must fit).

    A registry model is rebuilt from the name the file records. A user's model, or a bare state dict, needs
    `model` (a reference the user gives): a checkpoint never imports or runs code by itself. When the named file
    differs from the one recorded (sha256), `warn` (default: a line on stderr) is told."""
    from .modelref import build, is_registry_name, resolve

    data = read_checkpoint(path)
    recorded = data.get("model")
    record = source_record(data)
    if recorded is not None and not isinstance(recorded, str):
        raise UserError(f"checkpoint {path}: model name is not a string")
    if model is None:
        if data.get("bare"):
            raise UserError(f"checkpoint {path}: a bare state dict that names no model; "
                            "pass the model it belongs to, e.g. --model mynet.py:Net", 2)
        if record is not None or not is_registry_name(recorded):
            where = f" (file {record['path']})" if record and record.get("path") else ""
            raise UserError(f"checkpoint {path}: holds your model {recorded}{where}, whose code is never run by "
                            f"itself; pass --model {recorded} to load it", 2)
    elif recorded is not None and record is None and is_registry_name(recorded) and model != recorded:
        raise UserError(f"--model {model} disagrees with checkpoint {path}, which holds {recorded!r}", 2)
    named = model is not None
    model = model if named else recorded
    try:
        source = resolve(model)
    except UserError as e:  # a name the file recorded is the file's fault (1); one the user gave, a usage error
        raise UserError(f"checkpoint {path}: {e}", e.exit_code if named else 1) from None
    if record is not None and record.get("sha256") and source.sha256 and record["sha256"] != source.sha256:
        (warn or _warn)(f"warning: {source.path} has changed since checkpoint {path} was written "
                        f"(sha256 {record['sha256'][:12]}… then, {source.sha256[:12]}… now)")
    scaling = input_scaling or data.get("input_scaling") or (data.get("settings") or {}).get("input_scaling")
    scaling = scaling if scaling in ("unit", "mnist") else source.default_scaling
    net = build(source, scaling)
    state = data["state_dict"]
    check_finite(state, path)
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as e:
        detail = " ".join(str(e).split())[:240]
        raise UserError(f"checkpoint {path}: weights do not fit model {model} ({detail})") from None
    net.eval()
    return Checkpoint(Path(path), net, source.ref, data.get("settings") or {}, data.get("metrics") or {},
                      data.get("meta") or {}, data, source, scaling)


def check_finite(state: dict[str, Any], path: Path) -> None:
    """Refuse weights no trained model has: NaN or inf anywhere, or a negative BatchNorm variance."""
    for key, tensor in state.items():
        if not torch.is_tensor(tensor) or not tensor.is_floating_point():
            continue
        if not torch.isfinite(tensor).all():
            raise UserError(f"checkpoint {path}: weights are not finite ({key} holds NaN or inf)")
        if key.endswith("running_var") and bool((tensor < 0).any()):
            raise UserError(f"checkpoint {path}: weights are broken ({key} has a negative variance)")


def _warn(message: str) -> None:
    import sys

    print(message, file=sys.stderr)
