"""One model registry: architectures register themselves, every command resolves `--model NAME` here.

Modelled on torchvision's `models/_api.py`: a decorator records a builder with its metadata, and
`get_model(name, pretrained=True)` attaches the weights that ship inside the package (`mnist_tiny/weights/`).
Adding a model is one decorated function in one file under `mnist_tiny/models/`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from .errors import UserError

DEFAULT_MODEL = "fast-11k"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[[], Any]
    description: str
    # Training defaults for this model (field -> value of `Settings`): the recipe is data, not a code path.
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def weights_path(self) -> Path:
        return Path(str(resources.files("mnist_tiny") / "weights" / f"{self.name}.pt"))

    @property
    def has_weights(self) -> bool:
        return self.weights_path.is_file()


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, description: str, recipe: dict[str, Any] | None = None):
    """Decorator: `@register_model("my-net", "what it is", recipe={"lr": 0.1})` on a builder or class."""

    def wrap(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(name, builder, description, dict(recipe or {}))
        return builder

    return wrap


def _load_builtin_models() -> None:
    from . import models  # noqa: F401  (importing registers the built-in architectures)


def list_models() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _load_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown model {name!r}{hint}; known models: {', '.join(sorted(_REGISTRY))}", 2) from None


def get_model(name: str, pretrained: bool = False):
    """Build a registered model; with `pretrained=True`, load the weights shipped inside the package.

    Every model takes an N×1×28×28 float tensor in [0, 1] (white digit on black, as MNIST stores it) and
    returns N×10 logits; the normalisation happens inside the model.
    """
    spec = get_spec(name)
    model = spec.builder()
    if pretrained:
        if not spec.has_weights:
            raise UserError(f"model {name!r} has no shipped weights; train it with `mnist-tiny train --model {name}`")
        from .checkpoint import load_checkpoint

        model = load_checkpoint(spec.weights_path).model
    return model


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def model_rows() -> list[dict[str, Any]]:
    """One JSON-ready row per registered model, with the figures recorded alongside its shipped weights."""
    from .checkpoint import read_checkpoint

    rows = []
    for name in list_models():
        spec = get_spec(name)
        meta = read_checkpoint(spec.weights_path).get("meta", {}) if spec.has_weights else {}
        rows.append({
            "name": name, "default": name == DEFAULT_MODEL, "params": count_params(spec.builder()),
            "weights": spec.has_weights, "test_acc": meta.get("test_acc"), "val_acc": meta.get("val_acc"),
            "sweep": meta.get("sweep"), "command": meta.get("command"),
            "description": spec.description, "recipe": spec.recipe,
        })
    return rows
