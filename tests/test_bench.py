import json

from typer.testing import CliRunner

from mnist_tiny.cli.app import app


def test_bench_baseline_times_both_pipelines_as_processes_and_prints_the_ratios(mnist):
    result = CliRunner().invoke(app, ["bench", "--model", "s6-compact", "--images", "512", "--baseline", "--runs", "2",
                                      "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for pipeline in ("fast", "classic"):
        assert data[pipeline]["train_images_per_s"] > 0 and data[pipeline]["eval_images_per_s"] > 0
        # The whole process includes its own timed epoch and eval, plus start-up.
        assert data[pipeline]["process_seconds"] > data[pipeline]["train_seconds"] + data[pipeline]["eval_seconds"]
    expected = ((data["classic"]["train_seconds"] + data["classic"]["eval_seconds"])
                / (data["fast"]["train_seconds"] + data["fast"]["eval_seconds"]))
    assert abs(data["speedup"]["epoch_plus_eval"] - expected) < 1e-9
    assert abs(data["speedup"]["process"] - data["classic"]["process_seconds"] / data["fast"]["process_seconds"]) < 1e-9
    # Each pair of back-to-back runs gives its own ratio; the medians' ratio lies within their range.
    per_run = data["speedup"]["epoch_plus_eval_per_run"]
    assert per_run == [c / f for f, c in zip(data["fast"]["all_epoch_plus_eval_seconds"],
                                             data["classic"]["all_epoch_plus_eval_seconds"])]
    assert len(per_run) == 2 and min(per_run) - 1e-9 <= data["speedup"]["epoch_plus_eval"] <= max(per_run) + 1e-9

    table = CliRunner().invoke(app, ["bench", "--images", "128", "--runs", "2"])
    assert table.exit_code == 0 and "img/s" in table.stdout and "medians of 2 runs per pipeline" in table.stdout, table.output


def test_bench_reports_a_missing_dataset_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["bench", "--images", "128", "--data-dir", str(tmp_path)],
                                env={"MNIST_TINY_DOWNLOAD": "false"})
    assert result.exit_code != 0
    assert str(tmp_path) in result.output and "Traceback" not in result.output
