"""How a process imports torch: without Python's cycle collector walking through the import (docs/performance.md,
"Start-up")."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while the block runs (imports), back as it was after.

    Importing torch makes a great many objects that live as long as the process; their allocations set the
    collector off hundreds of times, and each pass walks them again and finds nothing to free (the figures are in
    docs/performance.md). Reference counting still frees everything else at once."""
    if not gc.isenabled():  # someone chose to run without it: leave that alone
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
