"""Hostile input, third round — run folders and other files: one broken run is one row; export and download limits."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from hostile3 import ESCAPE, SCRIPT
from mnist_tiny.errors import UserError


# run folders: one broken run is one row

def test_runs_lists_good_runs_beside_broken_ones(tmp_path, trained_run):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(trained_run, root / "good")
    for name, summary in (("history-of-ints", {"history": [1]}), ("wrong-types", {"params": "many",
                                                                                  "history": []})):
        (root / name).mkdir()
        (root / name / "settings.json").write_text(json.dumps({"model": "fast-6k", "epochs": "x"}))
        (root / name / "summary.json").write_text(json.dumps(summary))
    (root / "fifo").mkdir()
    os.mkfifo(root / "fifo" / "settings.json")
    (root / "escapes").mkdir()
    (root / "escapes" / "settings.json").write_text(json.dumps({"model": f"m{ESCAPE}", "epochs": 1}))
    result = subprocess.run([SCRIPT, "runs", str(root), "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = {Path(r["run"]).name: r for r in json.loads(result.stdout)}
    assert set(rows) == {"good", "history-of-ints", "wrong-types", "fifo", "escapes"}
    assert "error" not in rows["good"] and rows["good"]["best_val_acc"] > 0.5
    assert "error" in rows["history-of-ints"] and "error" in rows["fifo"]
    assert rows["wrong-types"].get("params") is None
    table = subprocess.run([SCRIPT, "runs", str(root)], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200"})
    assert table.returncode == 0 and "good" in table.stdout
    assert "\x1b]0;" not in table.stdout and "\\x1b]0;pwned" in table.stdout, table.stdout



# smaller holes

def test_export_never_lands_over_a_file_that_appeared_meanwhile(tmp_path):
    from mnist_tiny.training.rundir import write_atomic

    out = tmp_path / "model.onnx"

    def write(f):
        out.write_text("the user's own file")  # appears while ours is written
        f.write(b"ours")

    with pytest.raises(UserError, match="appeared while"):
        write_atomic(out, write, new=True)
    assert out.read_text() == "the user's own file"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


def test_a_download_reads_what_arrives_instead_of_waiting_for_a_whole_chunk():
    from mnist_tiny.data import mnist as data

    class Dripping:
        def read(self, n):  # a blocking read of n bytes would never return within the deadline
            raise AssertionError("read(n) waits for n bytes")

        def read1(self, n):
            return b"x"

    stream = data._Bounded(Dripping(), limit=100, deadline=time.monotonic() + 0.2)
    with pytest.raises(ValueError, match="took longer"):
        while True:
            assert stream.read(1 << 16) == b"x"
            time.sleep(0.01)
