from pathlib import Path

import pytest
from typer.testing import CliRunner

from mnist_tiny.cli.app import app
from mnist_tiny.errors import UserError
from mnist_tiny.settings import Settings, resolve_settings


def test_precedence_defaults_recipe_toml_env_flags(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('epochs = 7\nbatch_size = 64\nlr = 0.3\noptimizer = "adamw"\n')
    env = {"MNIST_TINY_BATCH_SIZE": "32", "MNIST_TINY_LR": "0.2"}
    s = resolve_settings({"lr": 0.1}, config, env)
    assert (s.epochs, s.batch_size, s.lr, s.optimizer) == (7, 32, 0.1, "adamw")  # toml, env, flag, toml
    assert s.weight_decay == Settings.model_fields["weight_decay"].default


def test_model_recipe_sits_under_user_settings():
    from mnist_tiny.models.refs import get_spec

    recipe = get_spec("s6-compact").recipe
    assert resolve_settings({"model": "s6-compact"}, environ={}).lr == recipe.get("lr", Settings().lr)
    assert resolve_settings({"model": "s6-compact", "lr": 0.123}, environ={}).lr == 0.123


def test_toml_train_table_is_accepted(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[train]\nepochs = 3\n")
    assert resolve_settings({}, config, {}).epochs == 3


@pytest.mark.parametrize("flags, env, toml, words", [
    ({}, {"MNIST_TINY_EPOCHS": "-1"}, None, ["'epochs'", "MNIST_TINY_EPOCHS"]),
    ({"lr": 0}, {}, None, ["'lr'", "--lr"]),
    ({"optimizer": "adam"}, {}, None, ["'optimizer'", "sgd"]),
    ({}, {"MNIST_TINY_BATCH_SIZE": "many"}, None, ["'batch_size'"]),
    ({}, {}, "epoch = 3\n", ["unknown setting 'epoch'", "did you mean 'epochs'"]),
    ({}, {}, "epochs = = 3\n", ["invalid TOML"]),
    ({}, {}, 'val_size = 60000\n', ["'val_size'"]),
])
def test_invalid_values_name_the_field_and_source(tmp_path, flags, env, toml, words):
    config = None
    if toml is not None:
        config = tmp_path / "bad.toml"
        config.write_text(toml)
    with pytest.raises(UserError) as e:
        resolve_settings(flags, config, env)
    assert e.value.exit_code == 2
    for word in words:
        assert word in str(e.value)


def test_missing_config_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        resolve_settings({}, tmp_path / "nope.toml", {})


@pytest.mark.parametrize("args, env, field", [
    (["train"], {"MNIST_TINY_EPOCHS": "-1"}, "epochs"),
    (["train", "--lr", "0"], {}, "lr"),
    (["train", "--optimizer", "adam"], {}, "optimizer"),
    (["train", "--model", "nope"], {}, "unknown model"),
    (["train", "--set", "rotate"], {}, "--set"),
])
def test_cli_rejects_bad_settings_with_exit_2_and_one_line(args, env, field):
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2
    assert field in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_env_variable_warns_and_is_ignored(capsys):
    s = resolve_settings({}, None, {"MNIST_TINY_EPOCH": "3"})
    assert s.epochs == resolve_settings({}, None, {}).epochs != 3  # the default model's recipe, as if unset
    assert "MNIST_TINY_EPOCHS" in capsys.readouterr().err


def test_settings_round_trip_through_json():
    s = resolve_settings({"epochs": 2, "out": Path("x")}, environ={})
    assert Settings.model_validate_json(s.model_dump_json()) == s
