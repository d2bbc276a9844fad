"""mnist-tiny: train, inspect and serve tiny CNNs for handwritten digits.

The public API is imported lazily so that `mnist-tiny --help` never pays for importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "DEFAULT_MODEL": "registry",
    "get_model": "modelref",
    "list_models": "modelref",
    "register_model": "registry",
    "check": "course",
    "summarize": "summary",
    "count_params": "registry",
    "load_checkpoint": "checkpoint",
    "Settings": "settings",
    "resolve_settings": "settings",
    "preprocess": "images",
    "UserError": "errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'mnist_tiny' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from .checkpoint import load_checkpoint  # noqa: F401
    from .errors import UserError  # noqa: F401
    from .images import preprocess  # noqa: F401
    from .course import check  # noqa: F401
    from .modelref import get_model, list_models  # noqa: F401
    from .registry import DEFAULT_MODEL, count_params, register_model  # noqa: F401
    from .summary import summarize  # noqa: F401
    from .settings import Settings, resolve_settings  # noqa: F401
