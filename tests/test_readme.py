"""README's commands, run as written: every `$ ...` line of its shell examples, in order, in one shell.

A line may end in `# exit N` when the example shows a failure on purpose. The shell starts in a scratch folder
holding the repository's examples/ (as a fresh clone would), with MNIST_TINY_DATA_DIR set as the set-up says."""

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def readme_commands() -> list[tuple[str, int]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```(?:text|bash|console)\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                command, _, code = line[2:].partition("# exit ")
                commands.append((command.strip(), int(code) if code.strip() else 0))
    return commands


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, len(lines)
    assert max(map(len, lines)) <= 200, "a table cell or line too long for a front page"
    for target in re.findall(r"\]\(([^)#]+)\)", "\n".join(lines)):
        if not target.startswith("http"):
            assert (REPO / target).exists(), target


def test_every_command_in_the_readme_runs_as_written(tmp_path):
    commands = readme_commands()
    assert len(commands) >= 8
    (tmp_path / "examples").symlink_to(REPO / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "100"}
    logs = tmp_path / "logs"
    logs.mkdir()
    script = ["set -u"]
    for i, (command, code) in enumerate(commands):
        # `{ ...; }` runs in this shell: a `cd` in one example holds for the next, as in the reader's terminal.
        script.append(f"{{ {command} ; }} > {logs}/{i}.log 2>&1; rc=$?; [ $rc -eq {code} ] || "
                      f"{{ echo \"README command {i} exited $rc (expected {code})\"; cat {logs}/{i}.log; exit 1; }}")
    result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
