"""Distillation from a teacher that held out the same validation images, and the split seed that allows it."""

import json

from typer.testing import CliRunner

from mnist_tiny.cli.app import app


def _train(tmp_path, name, *extra):
    out = tmp_path / name
    result = CliRunner().invoke(app, ["train", "--model", "tiny-600", "--epochs", "1", "--subset", "2000",
                                      "--set", "processes=1", "--out", str(out), "--json", *extra])
    return result, out


def test_a_teacher_must_have_held_out_this_runs_validation_split(tmp_path, mnist):
    result, out = _train(tmp_path, "wrong-split", "--set", "distill=0.5", "--set", "teacher=s6-attention")
    assert result.exit_code == 2 and not out.exists()
    assert "teacher s6-attention: held out 5000 validation images drawn with seed 1" in result.output
    assert "--set split_seed=1" in result.output
    result, out = _train(tmp_path, "no-teacher", "--set", "distill=0.5")
    assert result.exit_code == 2 and "needs a teacher" in result.output and not out.exists()
    result, out = _train(tmp_path, "no-weight", "--set", "teacher=s6-attention")
    assert result.exit_code == 2 and "distill = 0" in result.output and not out.exists()


def test_distillation_trains_on_the_teachers_split_and_changes_what_is_learned(tmp_path, mnist):
    common = ("--seed", "4", "--set", "split_seed=1")
    plain, plain_out = _train(tmp_path, "plain", *common)
    taught, taught_out = _train(tmp_path, "taught", *common, "--set", "distill=0.7", "--set", "teacher=s6-attention")
    assert plain.exit_code == 0 and taught.exit_code == 0, taught.output
    plain_run, taught_run = json.loads(plain.stdout), json.loads(taught.stdout)
    # The same split (split_seed) and the same seed: only the loss differs, and so does what was learned.
    settings = json.loads((taught_out / "settings.json").read_text())
    assert settings["split_seed"] == 1 and settings["seed"] == 4 and settings["teacher"] == "s6-attention"
    assert plain_run["history"][0]["train_loss"] != taught_run["history"][0]["train_loss"]
    assert plain_run["last_val_acc"] != taught_run["last_val_acc"] or plain_run["last_test_acc"] != taught_run["last_test_acc"]
    # eval rebuilds the validation split from the recorded split seed: the figure training reported.
    val = CliRunner().invoke(app, ["eval", "--checkpoint", str(taught_out / "last.pt"), "--split", "val", "--json"])
    assert val.exit_code == 0, val.output
    assert json.loads(val.stdout)["accuracy"] == taught_run["last_val_acc"]
