"""Keep the memory a process frees for its next batch, instead of handing it back to the OS.

Every training step and evaluation batch allocates the same few activation tensors (megabytes each) and frees
them again; every image the server reads makes temporaries of a few hundred kilobytes (`embed.worker`). glibc's
malloc serves blocks that large from fresh `mmap`s, or trims them off the heap when freed, so a step pays to fault
the same pages in again. Its dynamic thresholds adapt only after a block of each new size has been freed, so a
fresh process (a benchmark epoch, one `eval`) pays on its first batches of every shape. Fixing the
thresholds keeps freed blocks on the heap.
What it gains is in docs/performance.md ("Memory kept between steps") and docs/embed.md (the server).
"""

from __future__ import annotations

import ctypes
import sys

# mallopt(3) parameters.
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts; larger blocks are rare here (eval batches are ~20 MB)
TRIM_THRESHOLD = 512 << 20
TOP_PAD = 64 << 20


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds for this process; False where there is no glibc (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the symbols this process already has: libc's, where it is glibc
    except (OSError, AttributeError):
        return False
    return all(mallopt(option, value) == 1 for option, value in
               ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
