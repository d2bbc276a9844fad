"""The reader's own digit model (`reader/digits.onnx`, reader-6k): what predict reads with by default, how it is
trained (`python -m mnist_tiny.reader.digits_train`), and that it keeps the base model's shape and contract."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from conftest import DATA_DIR
from mnist_tiny.cli.app import app
from mnist_tiny.embed.runtime import READER_MODEL, OnnxReader, shipped_onnx


def test_predict_reads_with_the_reader_model_unless_told_otherwise(tmp_path, mnist):
    Image.fromarray(255 - mnist["test"].images[0].numpy()).resize((140, 140)).save(tmp_path / "seven.png")
    default = CliRunner().invoke(app, ["predict", str(tmp_path / "seven.png")], env={"COLUMNS": "100"})
    assert default.exit_code == 0 and f"predictions · {READER_MODEL}" in default.stdout
    named = CliRunner().invoke(app, ["predict", str(tmp_path / "seven.png"), "--model", "fast-6k"],
                               env={"COLUMNS": "100"})
    assert named.exit_code == 0 and "predictions · fast-6k" in named.stdout
    listed = CliRunner().invoke(app, ["models"], env={"COLUMNS": "100"})
    assert f"read with {READER_MODEL}" in " ".join(listed.stdout.split())


def test_the_shipped_reader_model_keeps_the_base_models_shape_and_records_its_training(mnist):
    reader = OnnxReader(shipped_onnx(READER_MODEL))
    training = json.loads(reader.meta["training"])
    assert reader.meta["base"] == "fast-6k" and training["params"] == 6_878 and 0.3 < reader.temperature < 3
    # What it scores on MNIST's test digits, as recorded when it was trained (reported, never chosen on).
    x = mnist["test"].images.numpy()[:, None].astype(np.float32) / 255
    acc = float((reader(x).argmax(1) == mnist["test"].labels.numpy()).mean())
    assert abs(acc - training["test_acc"]) < 1e-4 and acc >= 0.994


def test_the_training_command_writes_a_reader_model_and_never_overwrites(tmp_path):
    out = tmp_path / "digits.onnx"
    command = [sys.executable, "-m", "mnist_tiny.reader.digits_train", "--out", str(out), "--data-dir", str(DATA_DIR),
               "--crops", "200", "--val-crops", "100", "--epochs", "1", "--mnist-images", "1000"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout[done.stdout.index("{"):])
    reader = OnnxReader(out)
    assert reader.name == READER_MODEL and abs(reader.temperature - report["temperature"]) < 1e-5
    assert 0 <= report["val_crops_acc"] <= 1 and report["params"] == 6_878
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "exists" in again.stderr
