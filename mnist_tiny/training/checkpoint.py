"""Checkpoints: written atomically, loaded with `torch.load(weights_only=True)` so a file can never run code.

A checkpoint is a plain dict: {"format", "model", "state_dict", "settings", "metrics", "versions", ...}; a
training checkpoint (`last.pt`) also carries what `--resume` needs (optimizer, RNG states, position in the epoch).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mnist_tiny.errors import UserError, require_file
from mnist_tiny.training.rundir import write_atomic

FORMAT = "mnist-tiny/1"


def versions() -> dict[str, str]:
    from mnist_tiny import __version__

    return {"mnist_tiny": __version__, "torch": str(torch.__version__)}


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """`torch.save` through `rundir.write_atomic`: a crash or a full disk leaves the old file intact."""
    write_atomic(path, lambda f: torch.save(obj, f))


# A tiny model's checkpoint is kilobytes; a user's state dict may be larger, never this large.
MAX_CHECKPOINT_BYTES = 512 << 20


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load the raw dict safely; every way a file can be wrong becomes one UserError naming it.

    A bare state dict (what `torch.save(model.state_dict())` writes, a training script's `{"model_state_dict":
    ...}`, or a `.safetensors` file) comes back as `{"state_dict": ..., "bare": True}`: it names no model."""
    label = f"checkpoint {path}"
    require_file(path, label)
    size = os.path.getsize(path)
    if size > MAX_CHECKPOINT_BYTES:
        raise UserError(f"{label}: {size:,} bytes is too large for a checkpoint (limit {MAX_CHECKPOINT_BYTES:,})")
    with open(path, "rb") as f:
        head = f.read(16)
    if is_safetensors(head, size):
        data: Any = read_safetensors(path, label)
    else:
        if head.startswith(b"PK"):
            _check_zip(path, label)
        data = _torch_load(path, label)
    if isinstance(data, dict) and "state_dict" in data and "model" in data:
        return data
    bare = _bare_state_dict(data)
    if bare is None:
        raise UserError(f"{label}: not a mnist-tiny checkpoint or a state dict (no model name and weights)")
    return {"state_dict": bare, "bare": True}


def _check_zip(path: Path, label: str) -> None:
    """Read the zip's directory before torch does: refuse what torch.save never writes (compressed members, which
    torch would inflate into memory whole) and TorchScript archives, whose loading means running their code."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UserError(f"{label}: not a readable PyTorch checkpoint (broken zip: {_short(e)})") from None
    names = [m.filename for m in members]
    if any("/code/" in n or n.endswith("/constants.pkl") for n in names):
        raise UserError(f"{label}: a TorchScript archive (torch.jit.save), which holds code; mnist-tiny loads "
                        "weights only: save them with torch.save(model.state_dict(), PATH) and pass --model")
    packed = [m for m in members if m.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise UserError(f"{label}: a zip with compressed members ({packed[0].filename}); torch.save never "
                        "compresses, so this is not a checkpoint it wrote; refused without unpacking")
    total = sum(m.file_size for m in members)
    if total > MAX_CHECKPOINT_BYTES:
        raise UserError(f"{label}: its members add up to {total:,} bytes (limit {MAX_CHECKPOINT_BYTES:,})")


def _torch_load(path: Path, label: str) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own hints (about weights_only, TorchScript) are not ours
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # not a pickle of objects at all (text, random bytes)
            raise UserError(f"{label}: not a readable PyTorch checkpoint (wrong format: {_short(e)})") from None
        # weights_only refuses any global it does not allow-list, so a code payload never runs.
        lines = [ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln]
        detail = lines[0].split(" was not")[0].strip()[:160] if lines else "unsupported object"
        raise UserError(f"{label}: refused to load: it holds objects other than tensors ({detail})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError, KeyError,
            TypeError, AttributeError, IndexError, MemoryError) as e:
        raise UserError(f"{label}: not a readable PyTorch checkpoint (truncated or wrong format: {_short(e)})") from None


SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool}


def is_safetensors(head: bytes, size: int) -> bool:
    """safetensors: an 8-byte little-endian header length, then a JSON object."""
    return len(head) >= 9 and 2 <= int.from_bytes(head[:8], "little") <= size - 8 and head[8:9] == b"{"


def read_safetensors(path: Path, label: str) -> dict[str, torch.Tensor]:
    """A `.safetensors` file's tensors (plain data: a JSON header, then raw bytes; nothing to execute)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        body, tensors = memoryview(raw)[8 + n:], {}
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            dtype = SAFETENSORS_DTYPES.get(entry.get("dtype"))
            if dtype is None:
                raise ValueError(f"{key}: dtype {entry.get('dtype')!r} is not supported")
            start, stop = (int(v) for v in entry["data_offsets"])
            shape = [int(d) for d in entry["shape"]]
            count = math.prod(shape)
            if not 0 <= start <= stop <= len(body) or stop - start != count * dtype.itemsize:
                raise ValueError(f"{key}: data offsets {start}..{stop} do not fit shape {shape}")
            flat = torch.frombuffer(bytearray(body[start:stop]), dtype=dtype) if count else torch.empty(0, dtype=dtype)
            tensors[key] = flat.reshape(shape)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise UserError(f"{label}: a broken safetensors file ({_short(e)})") from None
    return tensors


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
    source: Any = None  # the resolved `models.refs.ModelSource`
    input_scaling: str = "unit"


def recorded_settings(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """The settings a checkpoint records, as a plain dict (empty when it records none); junk is one clear error."""
    saved = data.get("settings")
    if saved is None:
        return {}
    if not isinstance(saved, dict) or not all(isinstance(k, str) for k in saved):
        raise UserError(f"checkpoint {path}: its recorded settings are not a table of settings "
                        f"({type(saved).__name__}); it was not written by mnist-tiny train")
    return saved


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
    from mnist_tiny.models.refs import build, is_registered, resolve

    data = read_checkpoint(path)
    recorded = data.get("model")
    record = source_record(data)
    if recorded is not None and not isinstance(recorded, str):
        raise UserError(f"checkpoint {path}: model name is not a string")
    if model is None:
        if data.get("bare"):
            raise UserError(f"checkpoint {path}: a bare state dict that names no model; "
                            "pass the model it belongs to, e.g. --model mynet.py:Net", 2)
        if record is not None:
            where = f" (file {record['path']})" if record.get("path") else ""
            raise UserError(f"checkpoint {path}: holds your model {recorded}{where}, whose code is never run by "
                            f"itself; pass --model {recorded} to load it", 2)
        if not is_registered(recorded):
            # Not even a file beside it (`model` would be ./model.py): a checkpoint never chooses code to run.
            raise UserError(f"checkpoint {path}: records unknown model {recorded!r} (not in the registry; code "
                            "runs only from --model: pass the model it belongs to, e.g. --model mynet.py:Net)")
    elif recorded is not None and record is None and is_registered(recorded) and model != recorded:
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
    settings = recorded_settings(data, path)
    metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
    scaling = input_scaling or data.get("input_scaling") or settings.get("input_scaling")
    scaling = scaling if scaling in ("unit", "mnist") else source.default_scaling
    net = build(source, scaling)
    state = data["state_dict"]
    check_dtypes(state, net.state_dict(), path)
    check_finite(state, path)
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, KeyError) as e:
        detail = " ".join(str(e).split())[:240]
        raise UserError(f"checkpoint {path}: weights do not fit model {model} ({detail})") from None
    net.eval()
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    return Checkpoint(Path(path), net, source.ref, settings, metrics, meta, data, source, scaling)


def check_dtypes(state: dict[str, Any], expected: dict[str, Any], path: Path) -> None:
    """Refuse a tensor of another kind than the model's (load_state_dict would copy int32 bits into a float weight
    as numbers: a model that loads and reads nothing)."""
    for key, tensor in state.items():
        want = expected.get(key)
        if not torch.is_tensor(tensor) or want is None:
            continue
        if want.is_floating_point() != tensor.is_floating_point() or tensor.is_complex():
            raise UserError(f"checkpoint {path}: weights of the wrong kind ({key} holds {str(tensor.dtype)[6:]}, "
                            f"the model's is {str(want.dtype)[6:]})")


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

    from mnist_tiny.errors import printable

    print(printable(message), file=sys.stderr)
