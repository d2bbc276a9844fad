import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from typer.testing import CliRunner

from mnist_tiny.training.checkpoint import load_checkpoint, read_checkpoint
from mnist_tiny.cli.app import app
from mnist_tiny.evaluation.metrics import loss_and_accuracy


def test_short_real_run_learns_and_writes_its_files(trained_run, mnist):
    for name in ("best.pt", "last.pt", "metrics.jsonl", "settings.json", "summary.json", "curves.png"):
        assert (trained_run / name).is_file(), name
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert rows[1]["val_acc"] > 0.85  # chance is 0.10
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["best_test_acc"] > 0.85
    assert json.loads((trained_run / "settings.json").read_text())["subset"] == 4000


def test_checkpoint_round_trips_with_settings_and_versions(trained_run, mnist):
    raw = read_checkpoint(trained_run / "best.pt")
    assert raw["model"] == "s6-compact" and raw["settings"]["epochs"] == 2 and "torch" in raw["versions"]
    loaded = load_checkpoint(trained_run / "best.pt")
    test = mnist["test"]
    loss, acc = loss_and_accuracy(loaded.model, test.images[:2000], test.labels[:2000], torch.device("cpu"))
    best_epoch = json.loads((trained_run / "summary.json").read_text())["best_epoch"]
    assert loaded.metrics["epoch"] == best_epoch
    assert acc > 0.85


def test_best_checkpoint_is_chosen_on_validation(trained_run):
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((trained_run / "summary.json").read_text())
    best = max(rows, key=lambda r: (r["val_acc"], r["epoch"]))
    assert summary["best_epoch"] == best["epoch"] and summary["best_val_acc"] == best["val_acc"]


def test_existing_run_directory_is_never_overwritten(trained_run):
    before = (trained_run / "best.pt").read_bytes()
    result = CliRunner().invoke(app, ["train", "--epochs", "1", "--subset", "500", "--out", str(trained_run)])
    assert result.exit_code == 2 and "already holds files" in result.output
    assert (trained_run / "best.pt").read_bytes() == before


def _train_args(out, epochs=2):
    return ["train", "--model", "s6-compact", "--epochs", str(epochs), "--subset", "1500", "--val-size", "500",
            "--seed", "5", "--batch-size", "100", "--out", str(out), "--json"]


def test_same_seed_same_metrics_and_seeds_sweep(tmp_path, mnist):
    runner = CliRunner()
    a = runner.invoke(app, _train_args(tmp_path / "a", epochs=1))
    b = runner.invoke(app, _train_args(tmp_path / "b", epochs=1))
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    ra, rb = json.loads(a.stdout), json.loads(b.stdout)
    assert ra["history"][0]["val_acc"] == rb["history"][0]["val_acc"]
    assert ra["history"][0]["train_loss"] == rb["history"][0]["train_loss"]

    sweep = runner.invoke(app, ["train", "--epochs", "1", "--subset", "600", "--val-size", "300", "--seeds", "1,2",
                                "--out", str(tmp_path / "sweep")])
    assert sweep.exit_code == 0, sweep.output
    assert "2 seeds" in sweep.stdout and "mean ± std" in sweep.stdout
    assert (tmp_path / "sweep" / "seed-1" / "best.pt").is_file() and (tmp_path / "sweep" / "seed-2" / "best.pt").is_file()


def test_interrupt_then_resume_reproduces_the_uninterrupted_run(tmp_path, mnist):
    """SIGINT a real training process mid-epoch, resume it, and get exactly the metrics of a run left alone."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MNIST_TINY_THREADS": "1"}

    def command(out):
        return [sys.executable, "-m", "mnist_tiny", "train", "--epochs", "2", "--subset", "6000", "--val-size", "500",
                "--seed", "5", "--batch-size", "100", "--out", str(out), "--json"]

    process = subprocess.Popen(command(tmp_path / "cut"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 120
    while not metrics.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # inside epoch 2
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    state = read_checkpoint(tmp_path / "cut" / "last.pt")["resume"]
    assert state["epoch"] == 1 and 0 < state["batch"], "the interrupt should land inside epoch 2"

    resumed = subprocess.run([sys.executable, "-m", "mnist_tiny", "train", "--resume", str(tmp_path / "cut" / "last.pt"),
                              "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    whole = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True, env=env, timeout=300)
    assert whole.returncode == 0, whole.stderr
    a, b = json.loads(resumed.stdout), json.loads(whole.stdout)
    for key in ("best_val_acc", "best_test_acc", "last_test_acc", "best_epoch"):
        assert a[key] == b[key], key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert (tmp_path / "cut" / "metrics.jsonl").read_text().count("\n") == 2


def test_set_overrides_the_model_recipe(tmp_path, mnist):
    """tiny-600's recipe says 20 epochs; `--set epochs=1` (or --epochs 1) must win over it."""
    result = CliRunner().invoke(app, ["train", "--model", "tiny-600", "--set", "epochs=1", "--subset", "500",
                                      "--val-size", "200", "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 1 and len(summary["history"]) == 1


def test_release_ships_the_last_epoch_with_its_measured_figures(trained_run, tmp_path):
    from mnist_tiny.training.release import release

    summary = json.loads((trained_run / "summary.json").read_text())
    shipped = release(trained_run, "mnist-tiny train ...", Path(os.environ["MNIST_TINY_DATA_DIR"]),
                      dest=tmp_path / "w.pt")
    meta = read_checkpoint(shipped)["meta"]
    assert meta["checkpoint"] == "last" and meta["epoch"] == summary["epochs"] == 2
    assert abs(meta["test_acc"] - summary["last_test_acc"]) < 1e-4 and meta["val_acc"] == summary["last_val_acc"]
    assert meta["sweep"]["seeds"] == [3] and meta["command"] == "mnist-tiny train ..."
    assert load_checkpoint(shipped).name == "s6-compact"


def test_a_sweep_measured_again_becomes_the_headline_and_the_shipped_weights_stay(trained_run, tmp_path):
    """`release --headline`: the new runs' figures head the metadata, the weights and the sweep they came from
    (`shipped_from`) are kept."""
    import shutil

    from mnist_tiny.models.refs import get_spec
    from mnist_tiny.training.release import headline

    shipped = get_spec("s6-compact").weights_path
    before = read_checkpoint(shipped)
    copy = tmp_path / "w.pt"
    shutil.copy(shipped, copy)
    summary = json.loads((trained_run / "summary.json").read_text())
    sweep = headline([trained_run], "mnist-tiny train --seed 3 ...", dest=copy)
    after = read_checkpoint(copy)
    assert sweep["seeds"] == [3] and sweep["test_acc"] == [summary["last_test_acc"]]
    assert after["meta"]["sweep"] == sweep and after["meta"]["command"] == "mnist-tiny train --seed 3 ..."
    origin = before["meta"].get("shipped_from", {**before["meta"]["sweep"], "command": before["meta"]["command"]})
    assert after["meta"]["shipped_from"] == origin
    assert after["meta"]["test_acc"] == before["meta"]["test_acc"] and after["meta"]["seed"] == before["meta"]["seed"]
    assert all(torch.equal(after["state_dict"][k], v) for k, v in before["state_dict"].items())
    assert read_checkpoint(shipped)["meta"] == before["meta"]  # the shipped file itself untouched


def test_a_headline_keeps_what_only_the_weights_json_holds(trained_run, tmp_path, monkeypatch):
    """The temperature fitted on validation and its calibration live in `<name>.json` alone: a headline measured
    again rewrites that file and must keep them (the default's were once lost that way)."""
    import dataclasses
    import shutil

    import mnist_tiny.training.release as release
    from mnist_tiny.models.hub import sha256, weights_meta
    from mnist_tiny.models.refs import get_spec

    spec = get_spec("s6-compact")
    copy = tmp_path / "s6-compact.pt"
    shutil.copy(spec.weights_path, copy)
    shutil.copy(spec.weights_path.with_suffix(".json"), copy.with_suffix(".json"))

    class Here(type(spec)):
        @property
        def weights_path(self):
            return copy

    here = Here(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)})
    monkeypatch.setattr(release, "get_spec", lambda name: here)
    release.headline([trained_run], "mnist-tiny train --seed 3 ...")
    after, before = weights_meta(here), weights_meta(spec)
    assert after["temperature"] == before["temperature"] and after["calibration"] == before["calibration"]
    assert after["sweep"]["seeds"] == [3] and json.loads(copy.with_suffix(".json").read_text())["sha256"] == sha256(copy)
