"""Hostile input, third round — checkpoints and model files: a checkpoint never chooses code, weights of the wrong kind, a model file that exits."""

import subprocess

import torch
from typer.testing import CliRunner

from hostile3 import EXAMPLES, SCRIPT, STUDENTS, one_line_error
from mnist_tiny.cli.app import app


# checkpoints: never code, never the wrong kind

def test_a_checkpoint_naming_a_local_file_never_imports_it(tmp_path, trained_run, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "model.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                                       + (STUDENTS / "sequential_factory.py").read_text())
    state = torch.load(trained_run / "best.pt", weights_only=True)
    torch.save({**state, "model": "model", "source": None}, tmp_path / "evil.pt")
    monkeypatch.chdir(tmp_path)
    for args in (["eval", "--checkpoint", "evil.pt"], ["params", "--checkpoint", "evil.pt"],
                 ["check", "--checkpoint", "evil.pt"], ["predict", str(EXAMPLES / "marker-8.png"),
                                                        "--checkpoint", "evil.pt"]):
        result = CliRunner().invoke(app, args)
        one_line_error(result, "unknown model 'model'", "--model")
    result = CliRunner().invoke(app, ["train", "--resume", "evil.pt"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert not marker.exists()


def test_integer_weights_are_refused_in_one_line(tmp_path, trained_run):
    state = torch.load(trained_run / "best.pt", weights_only=True)
    ints = {k: (v.view(torch.int32) if v.dtype == torch.float32 else v) for k, v in state["state_dict"].items()}
    torch.save({**state, "state_dict": ints}, tmp_path / "ints.pt")
    for args in (["eval", "--checkpoint", str(tmp_path / "ints.pt")],
                 ["export", "--checkpoint", str(tmp_path / "ints.pt"), "--out", str(tmp_path / "x.onnx")]):
        result = CliRunner().invoke(app, args)
        one_line_error(result, "wrong kind", "int32")
    assert not (tmp_path / "x.onnx").exists()


def test_check_fails_a_model_file_that_exits(tmp_path):
    for where, code in (("top", "import sys\nsys.exit(0)\n"),
                        ("build", "import sys\nfrom torch import nn\nclass Net(nn.Module):\n"
                                  "    def __init__(self):\n        sys.exit(0)\n")):
        path = tmp_path / f"exits_{where}.py"
        path.write_text(code)
        result = subprocess.run([SCRIPT, "check", "--model", f"{path}:Net" if where == "build" else str(path)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode != 0, (where, result.stdout, result.stderr)
        assert "exit()" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


