"""How many processes and threads a CPU run uses: one policy, read by `train`, `bench` and the helpers.

Torch's intra-op threads gain little on layers this small, while one single-thread process per core keeps every
core busy (docs/performance.md, "A process per core"); the numbers below are bounds against what crashes or hangs
the libraries under us.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from mnist_tiny.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from mnist_tiny.settings import Settings


def can_fork() -> bool:
    """Helpers are forked: they share the parent's imports, data and registered models, and start in milliseconds.
    Linux only: macOS frameworks are not fork-safe, and Windows has no fork (torchrun works everywhere)."""
    return sys.platform.startswith("linux")


def threads_per_process(threads: int | None, processes: int) -> int:
    """CPU threads for each of `processes` processes: the `threads` setting, or the cores shared out."""
    return threads or max(1, usable_cores() // processes)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


# Every shard of a batch keeps enough images for BatchNorm's batch statistics: 32, so that the default batch of 64
# (a user's model without a recipe) is split over two cores like ours (a course model, 1 epoch of 20,000 images:
# 5.3-5.8 s of training on two processes against 7.3-9.7 s on one; docs/performance.md). Forked helpers start in
# milliseconds, so the run's length does not matter.
MIN_IMAGES_PER_SHARD = 32


def auto_processes(batch_size: int, cores: int) -> int:
    """How many CPU training processes `processes=auto` starts: one per core, each shard at least 32 images."""
    return max(1, min(cores, batch_size // MIN_IMAGES_PER_SHARD))


def planned_processes(s: "Settings", device: "torch.device") -> int:
    """Processes a plain `train` uses: `s.processes`, or one per core on the CPU when that pays (see distributed).

    Bounded by the machine: more processes or threads than a few per core only slow training down, and far
    more crash or hang the libraries under us (20,000 threads: an OpenMP abort; 100,000: a segfault)."""
    cores = usable_cores()
    if s.threads is not None and s.threads > 4 * cores:
        raise UserError(f"threads={s.threads} is more than 4 per core on this machine ({cores} cores); "
                        f"use at most {4 * cores}", 2)
    if s.processes is not None:
        if s.processes > 1 and device.type != "cpu":
            raise UserError(f"processes={s.processes} trains on the CPU; on {device.type} use one process, "
                            "or torchrun --nproc-per-node N for several GPUs", 2)
        if s.processes > 4 * cores:
            raise UserError(f"processes={s.processes} is more than 4 per core on this machine ({cores} cores); "
                            f"use at most {4 * cores}", 2)
        return s.processes
    if device.type != "cpu" or s.threads or not can_fork():
        return 1
    return auto_processes(s.batch_size, cores)
