"""glibc's malloc, tuned for a process that reads images all day (the server's).

A working-size image is a few hundred kilobytes of floats, and every numpy step makes a temporary of that size.
glibc hands such blocks out with mmap, or trims them off the heap's top when freed, so each one comes back as
fresh pages: a page fault per 4 KB, hundreds per temporary, in some expressions 7× their arithmetic. Keeping up to
TRIM bytes of freed memory and serving blocks under MMAP from the heap makes them reused pages instead
(measured: docs/embed.md). Nothing to do off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
TRIM = 64 << 20  # freed memory a worker keeps: a few requests' temporaries, not a leak
MMAP = 32 << 20  # blocks from this size on (a photo's decoded pixels) still come from mmap and go back at once


def keep_freed_memory() -> bool:
    """Tune this process's malloc as above; False where it is not glibc's (or cannot be reached)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM)) and bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP))
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
