"""Embed: ONNX export that checks itself, shipped ONNX files, and reading digits without torch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

import mnist_tiny
from conftest import REPO
from mnist_tiny.cli.app import app
from mnist_tiny.reader import images

STUDENTS = Path(__file__).parent / "students"
EXAMPLES = REPO / "examples"


def _onnx_accuracy(path: Path, test) -> float:
    """An independent loop: onnxruntime alone, the raw test images scaled to [0, 1]."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = test.images.numpy().astype(np.float32)[:, None] / 255
    logits = np.concatenate([session.run(None, {"pixels": x[i:i + 2000]})[0] for i in range(0, len(x), 2000)])
    return int((logits.argmax(1) == test.labels.numpy()).sum())


@pytest.mark.parametrize("name", mnist_tiny.list_models())
def test_every_shipped_onnx_file_scores_what_its_weights_score(name, mnist):
    path = REPO / "mnist_tiny" / "models" / "weights" / f"{name}.onnx"
    model = mnist_tiny.get_model(name, pretrained=True)
    with torch.inference_mode():
        torch_right = int((model(mnist["test"].images.float().unsqueeze(1) / 255).argmax(1)
                           == mnist["test"].labels).sum())
    assert _onnx_accuracy(path, mnist["test"]) == torch_right
    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert meta["model"] == name and int(meta["params"]) == mnist_tiny.count_params(model)
    assert json.loads(meta["labels"]) == list(range(10)) and "N×1×28×28" in meta["input"]


def test_export_of_a_users_model_checks_itself_and_never_overwrites(tmp_path, mnist):
    ref = f"{STUDENTS / 'residual_se.py'}:ResSE"
    run = tmp_path / "run"
    trained = CliRunner().invoke(app, ["train", "--model", ref, "--epochs", "1", "--subset", "2000",
                                       "--val-size", "500", "--out", str(run), "--json"])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "student.onnx"
    result = CliRunner().invoke(app, ["export", "--model", ref, "--checkpoint", str(run / "best.pt"),
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["onnx_acc"] == report["torch_acc"] == json.loads(trained.stdout)["best_test_acc"]
    assert report["max_logit_diff"] < 1e-3
    assert _onnx_accuracy(out, mnist["test"]) == round(report["torch_acc"] * 10_000)  # normalisation in the graph
    again = CliRunner().invoke(app, ["export", "--model", ref, "--checkpoint", str(run / "best.pt"),
                                     "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output
    # and predict reads with it, without torch's help
    digit = tmp_path / "seven.png"
    Image.fromarray(255 - mnist["test"].images[0].numpy()).resize((140, 140)).save(digit)
    read = CliRunner().invoke(app, ["predict", str(digit), "--checkpoint", str(out), "--json"])
    assert read.exit_code == 0 and json.loads(read.stdout)[0]["digit"] in range(10)


def test_predict_imports_no_torch_and_reads_what_torch_reads(tmp_path, mnist):
    sys.path.insert(0, str(Path(__file__).parent))
    from imagegen import photo_like_scan

    rng = np.random.default_rng(7)
    folder = tmp_path / "inbox"
    folder.mkdir()
    for i in range(60):
        photo_like_scan(mnist["test"].images[i].numpy(), rng).save(folder / f"scan-{i:02d}.jpg", quality=85)
    for p in (REPO / "examples").glob("*.png"):
        (folder / p.name).write_bytes(p.read_bytes())
    # The default reader (reader-6k) and a registry model's shipped ONNX file, in one process without torch.
    code = ("import json, sys; from typer.testing import CliRunner; from mnist_tiny.cli.app import app; "
            "d = CliRunner().invoke(app, ['predict', sys.argv[1], '--json']); "
            "r = CliRunner().invoke(app, ['predict', sys.argv[1], '--json', '--model', sys.argv[2]]); "
            "print(json.dumps({'torch': 'torch' in sys.modules, 'default': json.loads(d.stdout), "
            "'rows': json.loads(r.stdout)}))")
    done = subprocess.run([sys.executable, "-c", code, str(folder), mnist_tiny.DEFAULT_MODEL], capture_output=True,
                          text=True, timeout=120)
    report = json.loads(done.stdout)
    assert report["torch"] is False, "predict with a shipped model must not import torch"
    scans = [row for row in report["default"] if "scan-" in row["path"]]
    assert sum(row["text"] == str(int(mnist["test"].labels[int(row["path"][-6:-4])])) for row in scans) >= 58
    # The same files read on torch (the model in PyTorch, the same temperature): the same text, the same confidences.
    from mnist_tiny.embed.runtime import OnnxReader, shipped_onnx, torch_logits
    from mnist_tiny.reader.predict import predict_files

    model = mnist_tiny.get_model(mnist_tiny.DEFAULT_MODEL, pretrained=True).eval()
    temperature = OnnxReader(shipped_onnx(mnist_tiny.DEFAULT_MODEL)).temperature
    on_torch = {r["path"]: r for r in predict_files(torch_logits(model, temperature), [folder])}
    scans = [row for row in report["rows"] if "scan-" in row["path"]]
    right = sum(row["text"] == str(int(mnist["test"].labels[int(row["path"][-6:-4])])) for row in scans)
    assert len(scans) == 60 and right >= 58
    for row in report["rows"]:
        theirs = on_torch[row["path"]]
        assert row["text"] == theirs["text"], row["path"]
        if row["text"]:
            assert abs(row["confidence"] - theirs["confidence"]) < 1e-4
            assert [d["box"] for d in row["digits"]] == [d["box"] for d in theirs["digits"]]


@pytest.mark.parametrize("shape, size", [((131, 97), (20, 15)), ((28, 28), (20, 20)), ((7, 5), (20, 14)),
                                         ((512, 300), (300, 176)), ((3, 3), (20, 20)), ((300, 512), (96, 56)),
                                         ((200, 200), (96, 96)), ((130, 2048), (6, 96))])
def test_numpy_resampling_is_torchs(shape, size):
    a = np.random.default_rng(0).random(shape).astype(np.float32)
    t = torch.from_numpy(a)[None, None]
    area = F.interpolate(t, size=size, mode="area")[0, 0].numpy()
    bilinear = F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()
    assert np.abs(images.resize_area(a, size) - area).max() < 1e-5
    assert np.abs(images.resize_bilinear(a, size) - bilinear).max() < 1e-4  # torch rounds its weights in float32
    box = F.avg_pool2d(t, 3, 1, 1)[0, 0].numpy()
    assert np.abs(images.box_mean_3x3(a) - box).max() < 1e-6


NO_TORCH = """
import sys, importlib.util
class NoTorch:  # the reader-only install (`pip install .`): torch and torchvision are not there
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
found = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: (
    None if name.split(".")[0] in ("torch", "torchvision") else found(name, package))
from mnist_tiny.cli.app import main
sys.argv = ["mnist-tiny", *sys.argv[1:]]
main()
"""


def test_the_reader_only_install_lists_models_and_names_typos():
    def run(*args):
        return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COLUMNS": "80"})

    listed = run("models", "--json")
    assert listed.returncode == 0, listed.stderr
    names = [row["name"] for row in json.loads(listed.stdout)]
    assert mnist_tiny.DEFAULT_MODEL in names and "micro-1k" in names
    table = run("models")
    assert table.returncode == 0 and "reader-only install" in table.stdout and "mnist-tiny[train]" in table.stdout
    typo = run("predict", str(EXAMPLES / "marker-8.png"), "--model", "fast-6kk")
    assert typo.returncode == 2 and "unknown model 'fast-6kk' (did you mean 'fast-6k'?)" in typo.stderr
    assert "needs torch" not in typo.stderr and len(typo.stderr.strip().splitlines()) == 1
    read = run("predict", str(EXAMPLES / "marker-8.png"), "--model", "micro-2k", "--json")
    assert read.returncode == 0 and json.loads(read.stdout)[0]["digit"] == 8
