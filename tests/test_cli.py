"""The installed `mnist-tiny` console script, run as a user runs it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


SCRIPT = shutil.which("mnist-tiny", path=str(Path(sys.executable).parent)) or shutil.which("mnist-tiny")


def run(*args, env=None, timeout=300):
    assert SCRIPT, "the mnist-tiny console script is not installed (pip install -e '.[test]')"
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_help_lists_the_commands_without_importing_torch():
    result = run("--help")
    assert result.returncode == 0
    for name in ("train", "eval", "params", "predict", "models"):
        assert name in result.stdout
    probe = subprocess.run([sys.executable, "-c", (
        "import sys\nfrom mnist_tiny.cli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)")],
        capture_output=True, text=True, timeout=60)
    assert "NO-TORCH" in probe.stderr


def test_training_does_not_import_torch_dynamo(tmp_path, mnist):
    # torch.optim's optimizers import torch._dynamo on first use (~2 s of every run's start-up); ours must not.
    probe = subprocess.run([sys.executable, "-c", (
        "import sys\nfrom mnist_tiny.cli.app import app\n"
        f"try:\n    app(['train', '--epochs', '1', '--subset', '256', '--out', {str(tmp_path / 'run')!r}, '--json'])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('DYNAMO' if 'torch._dynamo' in sys.modules else 'NO-DYNAMO', file=sys.stderr)")],
        capture_output=True, text=True, timeout=300)
    assert "NO-DYNAMO" in probe.stderr, probe.stderr[-2000:]
    assert (tmp_path / "run" / "summary.json").is_file()


def test_python_dash_m_and_version():
    result = subprocess.run([sys.executable, "-m", "mnist_tiny", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("mnist-tiny ")


def test_models_lists_the_registry_as_json():
    result = run("models", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["s6-attention"]["params"] == 10_550 and rows["s6-compact"]["params"] == 6_926
    assert sum(row["default"] for row in rows.values()) == 1
    table = run("models")
    assert "s6-attention" in table.stdout and "10,550" in table.stdout


def test_bad_environment_value_is_one_line_naming_the_field():
    result = run("train", env={"MNIST_TINY_EPOCHS": "-1"})
    assert result.returncode == 2
    assert "epochs" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_train_in_a_pipe_prints_plain_lines_and_writes_the_run(tmp_path):
    out = tmp_path / "DIR"
    result = run("train", "--model", "s6-compact", "--epochs", "1", "--subset", "5000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for name in ("best.pt", "last.pt", "metrics.jsonl"):
        assert (out / name).is_file()
    assert "epoch 1/1" in result.stdout and "\x1b" not in result.stdout
    assert "test acc" in result.stdout


def test_a_command_that_loaded_torch_ends_with_its_own_exit_code_and_whole_output(tmp_path):
    """Such a process ends without torch's teardown (`process_exit.quick_exit`): what it printed arrives whole
    through a pipe, and an error keeps its code and its one line."""
    listed = run("params", "--model", "fast-6k", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["total_params"] == 6878
    missing = run("eval", "--checkpoint", str(tmp_path / "nothing.pt"))
    assert missing.returncode == 1 and missing.stderr.strip().splitlines() == [
        f"error: checkpoint {tmp_path / 'nothing.pt'}: no such file"], missing.stderr


def test_eval_with_no_flags_scores_the_shipped_default(mnist):
    result = run("eval", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 10000 and report["accuracy"] > 0.99
