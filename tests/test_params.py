import json

import pytest
from torch import nn
from typer.testing import CliRunner

import mnist_tiny
from mnist_tiny.cli.app import app
from mnist_tiny.inspection.summary import summarize


@pytest.mark.parametrize("name", mnist_tiny.list_models())
def test_totals_match_the_model(name):
    model = mnist_tiny.get_model(name)
    summary = summarize(model, name)
    assert summary["total_params"] == sum(p.numel() for p in model.parameters())
    assert sum(layer["params"] for layer in summary["layers"]) == summary["total_params"]
    assert summary["macs"] == sum(layer["macs"] for layer in summary["layers"]) > 0
    assert summary["has"]["batchnorm"]
    # A true global average pool where the model has one; s6-compact's AvgPool2d(3) on a 5×5 map (and the models
    # derived from it) averages 9 of the 25 positions.
    partial = {"s6-compact", "s6-lean", "lean-6k", "fast-11k", "fast-6k", "fast-25k"}
    assert summary["has"]["gap"] == (name not in partial), summary["rules"]["gap"]


def test_receptive_field_of_a_known_stack():
    # 3×3 conv (rf 3) → 3×3 conv (5) → 2×2 max-pool /2 (6, jump 2) → 3×3 conv (10) → dilated 3×3, d=2 (18)
    stack = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=2, dilation=2),
                          nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 3, padding=1))
    summary = summarize(stack, "stack")
    assert [layer["rf"]["size"] for layer in summary["layers"]] == [3, 5, 6, 10, 18, 22, 30]
    assert [layer["rf"]["jump"] for layer in summary["layers"]] == [1, 1, 2, 2, 2, 4, 4]
    assert summary["receptive_field"] == 30
    assert summary["has"] == {"batchnorm": False, "dropout": False, "gap": False, "fc": False}
    # MACs of the first conv: 28·28 positions × 4 outputs × 9 weights
    assert summary["layers"][0]["macs"] == 28 * 28 * 4 * 9


def test_params_json_for_the_attention_reference():
    result = CliRunner().invoke(app, ["params", "--model", "s6-attention", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["total_params"] == data["trainable_params"] == 10_550
    assert set(data) >= {"model", "total_params", "trainable_params", "macs", "receptive_field", "has", "layers"}
    assert set(data["layers"][0]) >= {"name", "type", "output_shape", "params", "macs", "rf"}
    assert data["has"] == {"batchnorm": True, "dropout": True, "gap": True, "fc": True}


def test_params_table_and_course_rules():
    table = CliRunner().invoke(app, ["summarize", "--model", "s6-compact"])
    assert table.exit_code == 0 and "6,926" in table.stdout and "receptive field" in table.stdout
    ok = CliRunner().invoke(app, ["params", "--model", "s6-compact", "--max-params", "8000", "--require", "bn,dropout"])
    assert ok.exit_code == 0
    partial = CliRunner().invoke(app, ["params", "--model", "s6-compact", "--require", "gap"])
    assert partial.exit_code == 1 and "covers 9 of 25 positions" in partial.output
    too_big = CliRunner().invoke(app, ["params", "--model", "s6-attention", "--max-params", "8000"])
    assert too_big.exit_code == 1 and "10,550" in too_big.output and "8,000" in too_big.output
    unknown = CliRunner().invoke(app, ["params", "--require", "bn,attention"])
    assert unknown.exit_code == 2 and "attention" in unknown.output
