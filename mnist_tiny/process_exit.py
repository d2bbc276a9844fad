"""How a process that loaded torch ends: without tearing torch down, which costs half a second of every training
run (docs/performance.md)."""

from __future__ import annotations

import os
import sys
import threading


def quick_exit(code: int | str | None) -> None:
    """End a process that loaded torch without tearing torch down (half a second of every training run,
    docs/performance.md): the command has returned, its files are written and closed and its helpers joined,
    so only the interpreter's own clean-up is skipped. Returns (the normal exit) where that is not so: torch
    never loaded (`predict`, `--help`), or a thread other than a daemon still running."""
    if "torch" not in sys.modules or any(t.is_alive() and not t.daemon for t in threading.enumerate()
                                         if t is not threading.main_thread()):
        return
    if isinstance(code, str):  # what SystemExit would print
        print(code, file=sys.stderr)
        code = 1
    if "mnist_tiny.parallel.distributed" in sys.modules:
        sys.modules["mnist_tiny.parallel.distributed"].leave()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code or 0)
