"""How a process imports torch: without Python's cycle collector walking through the import (docs/performance.md,
"Start-up")."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while the block runs (imports), back as it was after.

    Importing torch makes ~190,000 objects that live as long as the process, and their allocations trigger
    collections that walk them again and again (about 400 young, 36 middle and 3 full ones; a full one takes
    ~0.06 s here) and find nothing to free. Reference counting still frees everything else at once."""
    if not gc.isenabled():  # someone chose to run without it: leave that alone
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
