"""Built-in architectures. Importing this package registers them all (one file per family)."""

from mnist_tiny.models import fast11k  # noqa: F401
from mnist_tiny.models import lean  # noqa: F401
from mnist_tiny.models import reference  # noqa: F401
from mnist_tiny.models import tiny  # noqa: F401
