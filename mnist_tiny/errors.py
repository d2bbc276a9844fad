"""The one exception type the CLI turns into a single line on stderr and a non-zero exit."""

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input (a file, a setting, a name): shown as one line, no traceback.

    `exit_code` follows the usual conventions: 2 for bad settings/usage, 1 for everything else.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def require_nonempty_file(path: Path, label: str) -> Path:
    """The checks every input file gets before it is parsed: exists, is a file, is not empty."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{label}: no such file")
    if path.is_dir():
        raise UserError(f"{label}: is a directory")
    if path.stat().st_size == 0:
        raise UserError(f"{label}: empty file")
    return path
