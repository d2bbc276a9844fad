import json

import torch
from PIL import Image
from typer.testing import CliRunner

from mnist_tiny.training.checkpoint import load_checkpoint
from mnist_tiny.cli.app import app


def _independent_accuracy(model, images, labels):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), 500):
            x = images[start:start + 500].float().unsqueeze(1) / 255.0
            correct += int((model(x).argmax(1) == labels[start:start + 500]).sum())
    return correct / len(labels)


def test_eval_json_agrees_with_an_independent_loop(trained_run, mnist):
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(trained_run / "best.pt"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    for key in ("accuracy", "loss", "n", "per_class", "confusion", "model", "params"):
        assert key in report
    assert report["n"] == 10000 and report["model"] == "s6-compact" and report["params"] == 6926
    expected = _independent_accuracy(load_checkpoint(trained_run / "best.pt").model, mnist["test"].images,
                                     mnist["test"].labels)
    assert abs(report["accuracy"] - expected) < 1e-9
    confusion = torch.tensor(report["confusion"])
    assert confusion.sum() == 10000 and confusion.diag().sum() == round(expected * 10000)
    assert [row["support"] for row in report["per_class"]] == mnist["test"].labels.bincount().tolist()


def test_eval_val_split_is_the_one_the_run_held_out(trained_run):
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(trained_run / "best.pt"), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert report["n"] == 2000
    assert abs(report["accuracy"] - summary["best_val_acc"]) < 1e-6


def test_eval_report_writes_pictures_and_metrics(trained_run, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(trained_run / "best.pt"), "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert "confusion" in result.stdout and "precision" in result.stdout
    for name in ("confusion.png", "errors.png"):
        with Image.open(out / name) as image:
            assert image.width > 300 and image.height > 100
    assert json.loads((out / "metrics.json").read_text())["n"] == 10000


def test_eval_bad_split_and_model_checkpoint_mismatch(trained_run):
    bad = CliRunner().invoke(app, ["eval", "--checkpoint", str(trained_run / "best.pt"), "--split", "dev"])
    assert bad.exit_code == 2 and "--split" in bad.output
    mismatch = CliRunner().invoke(app, ["eval", "--checkpoint", str(trained_run / "best.pt"), "--model", "s6-attention"])
    assert mismatch.exit_code == 2 and "s6-compact" in mismatch.output
