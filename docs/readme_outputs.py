"""Refresh the output under every `$ command` in README.md by running the commands, in order, in one shell.

    MNIST_TINY_DATA_DIR=../shared/data python docs/readme_outputs.py    # rewrites README.md in place

The shell starts in a scratch folder holding examples/ (as a fresh clone has it), at 80 columns, as
tests/test_readme.py runs them; what README shows is then what the commands print.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = "__MNIST_TINY_README_OUTPUT__"


def main() -> None:
    readme = REPO / "README.md"
    text = readme.read_text(encoding="utf-8")
    blocks = list(re.finditer(r"```text\n(.*?)```", text, flags=re.S))
    commands = [line[2:] for b in blocks for line in b.group(1).splitlines() if line.startswith("$ ")]
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "examples").symlink_to(REPO / "examples")
        script = "".join(f"echo {MARK}; {{ {c.split('# exit ')[0]} ; }} 2>&1\n" for c in commands)
        env = {**os.environ, "COLUMNS": "80", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        ran = subprocess.run(["bash", "-c", script], cwd=scratch, env=env, capture_output=True, text=True)
    outputs = ran.stdout.split(MARK + "\n")[1:]
    if len(outputs) != len(commands):
        sys.exit(f"ran {len(outputs)} of {len(commands)} commands:\n{ran.stdout[-2000:]}{ran.stderr[-2000:]}")
    # Paths of this machine read as the set-up's: the scratch folder as "…", the data folder as exported there.
    data = os.environ.get("MNIST_TINY_DATA_DIR")
    outputs = [out.replace(scratch, "…") for out in outputs]
    if data:
        outputs = [out.replace(str(Path(data).resolve()), "../shared/data").replace(data, "../shared/data")
                   for out in outputs]
    pieces, at, k = [], 0, 0
    for b in blocks:
        body, ran_one = [], False
        for line in b.group(1).splitlines():
            if line.startswith("$ "):
                body += [line, *[ln.rstrip() for ln in outputs[k].rstrip("\n").splitlines()]]
                k, ran_one = k + 1, True
            elif not ran_one:  # text before the block's first command stays; old output after one is replaced
                body.append(line)
        pieces += [text[at:b.start(1)], "\n".join(body) + "\n"]
        at = b.end(1)
    readme.write_text("".join(pieces) + text[at:], encoding="utf-8")
    print(f"refreshed the output of {len(commands)} commands")


if __name__ == "__main__":
    main()
