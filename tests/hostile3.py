"""What the hostile-input tests share (rounds two and three): the one-line-error check, the installed command, an
escape sequence that would retitle the terminal and clear it."""

import sys
from pathlib import Path

from conftest import REPO

SCRIPT = str(Path(sys.executable).parent / "mnist-tiny")
EXAMPLES = REPO / "examples"
STUDENTS = Path(__file__).parent / "students"
ESCAPE = "\x1b]0;pwned\x07\x1b[2J"


def one_line_error(result, *words, code=None):
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for word in words:
        assert word in result.output, (word, result.output)
