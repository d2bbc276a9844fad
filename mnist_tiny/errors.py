"""The one exception type the CLI turns into a single line on stderr and a non-zero exit."""

import errno
import os
import select
import stat
import time
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input (a file, a setting, a name): shown as one line, no traceback.

    `exit_code` follows the usual conventions: 2 for bad settings/usage, 1 for everything else.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def require_file(path: Path, label: str, pipes: bool = False) -> str:
    """The checks every input file gets before it is parsed; returns its kind, "file" or (with `pipes`) "pipe".

    A regular, non-empty file; with `pipes`, also a pipe such as `<(cat img.png)`. Directories, devices
    (/dev/zero), sockets, FIFOs where no pipe is wanted, dangling links and link loops are each named."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        kind = "a dangling symbolic link" if os.path.islink(path) else "no such file"
        raise UserError(f"{label}: {kind}") from None
    except OSError as e:
        reason = "a symbolic link loop" if e.errno == errno.ELOOP else f"cannot read ({e.strerror})"
        raise UserError(f"{label}: {reason}") from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise UserError(f"{label}: is a directory")
    if stat.S_ISFIFO(mode):
        if pipes:
            return "pipe"
        raise UserError(f"{label}: is a pipe (FIFO), not a regular file")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise UserError(f"{label}: is a device, not a regular file")
    if not stat.S_ISREG(mode):
        raise UserError(f"{label}: not a regular file (a socket?)")
    if info.st_size == 0:
        raise UserError(f"{label}: empty file")
    return "file"


def read_pipe(path: Path, label: str, limit: int, seconds: float = 30.0) -> bytes:
    """Everything written to a pipe, at most `limit` bytes within `seconds` (a FIFO nobody writes to ends at once)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    chunks, size, deadline = [], 0, time.monotonic() + seconds
    try:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)  # b"" at the end, and at once when no writer has the pipe open
            except BlockingIOError:  # a writer, no data yet
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UserError(f"{label}: the pipe sent no end of data within {seconds:.0f} s") from None
                select.select([fd], [], [], left)
                continue
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise UserError(f"{label}: more than {limit:,} bytes from a pipe; refused")
            chunks.append(chunk)
    finally:
        os.close(fd)
    if not size:
        raise UserError(f"{label}: empty (nothing was written to the pipe)")
    return b"".join(chunks)
