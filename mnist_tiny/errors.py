"""The one exception type the CLI turns into a single line on stderr and a non-zero exit."""

import errno
import os
import select
import stat
import time
from pathlib import Path


# Text from a file (a name, a run's settings, an ONNX file's metadata) may hold terminal escape sequences that
# retitle the window or clear the screen; it is shown with every control character written out instead.
_BIDI = set(range(0x202A, 0x202F)) | set(range(0x2066, 0x206A))  # direction overrides that reorder what is shown


def printable(text: str, keep_newlines: bool = True) -> str:
    """`text` with control characters (C0, DEL, C1, bidi overrides) escaped as \\xNN / \\uNNNN; newlines kept
    when asked (our own multi-line messages)."""
    if text.isprintable() and not any(ord(c) in _BIDI for c in text):
        return text
    out = []
    for c in text:
        code = ord(c)
        if c == "\n" and keep_newlines:
            out.append(c)
        elif code < 0x20 or 0x7F <= code < 0xA0:
            out.append(f"\\x{code:02x}")
        elif code in _BIDI or (not c.isprintable() and c not in " \u3000"):
            out.append(f"\\u{code:04x}")
        else:
            out.append(c)
    return "".join(out)


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
