"""mnist-tiny: train, inspect and serve tiny CNNs for handwritten digits.

The public API is imported lazily so that `mnist-tiny --help` never pays for importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "DEFAULT_MODEL": "models.registry",
    "get_model": "models.hub",
    "list_models": "models.refs",
    "register_model": "models.registry",
    "check": "course.project",
    "summarize": "inspection.summary",
    "count_params": "models.registry",
    "load_checkpoint": "training.checkpoint",
    "Settings": "settings",
    "resolve_settings": "settings",
    "preprocess": "reader.images",
    "read": "reader.predict",
    "UserError": "errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'mnist_tiny' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from mnist_tiny.course.project import check  # noqa: F401
    from mnist_tiny.errors import UserError  # noqa: F401
    from mnist_tiny.inspection.summary import summarize  # noqa: F401
    from mnist_tiny.models.hub import get_model  # noqa: F401
    from mnist_tiny.models.refs import list_models  # noqa: F401
    from mnist_tiny.models.registry import DEFAULT_MODEL, count_params, register_model  # noqa: F401
    from mnist_tiny.reader.images import preprocess  # noqa: F401
    from mnist_tiny.reader.predict import read  # noqa: F401
    from mnist_tiny.settings import Settings, resolve_settings  # noqa: F401
    from mnist_tiny.training.checkpoint import load_checkpoint  # noqa: F401
