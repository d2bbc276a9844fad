"""Shipped weights: where they live, how they load, and what they measured, as data beside them.

One layer above the registry, as torchvision's weights API sits above its model builders: the registry names
models and builds them; this module adds `weights/<name>.pt` (the state dict and how it was trained) and
`weights/<name>.json` (its figures: read by `mnist-tiny models` without loading any tensor).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mnist_tiny.errors import UserError
from mnist_tiny.models.refs import build, get_spec, list_models, plugin_entry_points, resolve
from mnist_tiny.models.registry import DEFAULT_MODEL, ModelSpec, count_params


def meta_path(spec: ModelSpec) -> Path:
    return spec.weights_path.with_suffix(".json")


def weights_meta(spec: ModelSpec) -> dict[str, Any]:
    """The shipped weights' figures (test and validation accuracy, the sweep they came from, the command)."""
    path = meta_path(spec)
    return json.loads(path.read_text(encoding="utf-8"))["meta"] if path.is_file() else {}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_meta(spec: ModelSpec, meta: dict[str, Any]) -> Path:
    """Write `<name>.json` for the `.pt` just shipped (release.py): its figures and the sha256 they belong to."""
    path = meta_path(spec)
    path.write_text(json.dumps({"weights": spec.weights_path.name, "sha256": sha256(spec.weights_path),
                                "meta": meta}, indent=2) + "\n", encoding="utf-8")
    return path


def load_weights(name: str):
    """A registry model with its shipped weights, in eval mode (our own files: a plain weights-only load)."""
    import torch

    spec = get_spec(name)
    if not spec.has_weights:
        raise UserError(f"model {name!r} has no shipped weights; train it with `mnist-tiny train --model {name}`", 2)
    model = build(resolve(name))
    model.load_state_dict(torch.load(spec.weights_path, map_location="cpu", weights_only=True)["state_dict"])
    return model.eval()


def get_model(ref: str | None = None, pretrained: bool = False):
    """Build a model from a reference (a registry name, `file.py:Attr`, `module:Attr`); `pretrained=True` loads a
    registry model's shipped weights. Every model takes N×1×28×28 float pixels in [0, 1] and returns N×10 logits."""
    source = resolve(ref)
    if not pretrained:
        return build(source)
    if not source.builtin:
        raise UserError(f"model {source.ref!r} has no shipped weights; train it with "
                        f"`mnist-tiny train --model {source.ref}`", 2)
    return load_weights(source.name)


def shipped_rows() -> list[dict[str, Any]]:
    """`model_rows` from the shipped weights' JSON files alone, without torch: what a reader-only install
    (`pip install mnist-tiny`) can read with; the registry itself is Python code that needs torch."""
    from importlib import resources

    folder = Path(str(resources.files("mnist_tiny.models") / "weights"))
    rows = []
    for path in sorted(folder.glob("*.json")):
        if not path.with_suffix(".onnx").is_file():
            continue
        meta = json.loads(path.read_text(encoding="utf-8")).get("meta", {})
        rows.append({"name": path.stem, "kind": "shipped", "default": path.stem == DEFAULT_MODEL,
                     "params": meta.get("params"), "weights": True, "test_acc": meta.get("test_acc"),
                     "val_acc": meta.get("val_acc"), "sweep": meta.get("sweep"), "command": meta.get("command"),
                     "description": "", "recipe": meta.get("recipe")})
    return rows


def shipped_name_error(name: str) -> UserError:
    """`get_spec`'s did-you-mean, from the shipped files (no torch): for a reader-only install."""
    import difflib

    known = [row["name"] for row in shipped_rows()]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UserError(f"unknown model {name!r}{hint}; this reader-only install reads with: {', '.join(known)}; "
                     "training and your own models need pip install 'mnist-tiny[train]'", 2)


def model_rows() -> list[dict[str, Any]]:
    """One JSON-ready row per registered model (with its shipped weights' figures), then each plugin, unloaded."""
    rows = []
    for name in list_models():
        spec = get_spec(name)
        meta = weights_meta(spec) if spec.has_weights else {}
        rows.append({
            "name": name, "kind": "registry", "default": name == DEFAULT_MODEL, "params": count_params(spec.builder()),
            "weights": spec.has_weights, "test_acc": meta.get("test_acc"), "val_acc": meta.get("val_acc"),
            "sweep": meta.get("sweep"), "command": meta.get("command"),
            "description": spec.description, "recipe": spec.recipe,
        })
    for name, entry_point in sorted(plugin_entry_points().items()):
        dist = getattr(entry_point, "dist", None)
        rows.append({
            "name": name, "kind": "plugin", "default": False, "params": None, "weights": False, "test_acc": None,
            "val_acc": None, "sweep": None, "command": None, "recipe": None,
            "description": f"from {dist.name if dist else 'a package'}: {entry_point.value} (imported when named)",
        })
    return rows
