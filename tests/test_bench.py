import json

from typer.testing import CliRunner

from mnist_tiny.cli import app


def test_bench_baseline_prints_both_pipelines_and_the_ratio(mnist):
    result = CliRunner().invoke(app, ["bench", "--model", "s6-compact", "--images", "512", "--baseline", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for pipeline in ("fast", "classic"):
        assert data[pipeline]["train_images_per_s"] > 0 and data[pipeline]["eval_images_per_s"] > 0
    expected = ((data["classic"]["train_seconds"] + data["classic"]["eval_seconds"])
                / (data["fast"]["train_seconds"] + data["fast"]["eval_seconds"]))
    assert abs(data["speedup"]["epoch_plus_eval"] - expected) < 1e-9
    table = CliRunner().invoke(app, ["bench", "--images", "128"])
    assert table.exit_code == 0 and "img/s" in table.stdout, table.output
