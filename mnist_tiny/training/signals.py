"""Stopping a run cleanly: SIGINT/SIGTERM become a flag the loop checks between batches, and the exception that
carries where the state was saved."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path


class TrainingInterrupted(Exception):
    def __init__(self, checkpoint: Path, signum: int):
        super().__init__(f"interrupted by signal {signum}; state saved to {checkpoint}")
        self.checkpoint, self.signum = checkpoint, signum


@contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks between batches (main thread only).

    A second signal aborts, unless it follows the first within a second: under torchrun a terminal's Ctrl-C
    reaches each worker twice (from the terminal, and forwarded by the launcher), and the workers must still get
    to save their state.
    """
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    first_at: list[float] = []

    def handle(signum, frame):
        if requested:
            if time.monotonic() - first_at[0] > 1.0:
                raise KeyboardInterrupt
            return
        requested.append(signum)
        first_at.append(time.monotonic())

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
