"""Built-in architectures. Importing this package registers them all (one file per family)."""

from . import fast, lean, reference, tiny  # noqa: F401
