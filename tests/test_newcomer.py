"""A newcomer's first hour: commands that work in a new shell, runs side by side, help that reads right."""

import json
import os
import re
import typing
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from mnist_tiny.cli.app import app

SCRIPT = str(Path(sys.executable).parent / "mnist-tiny")


def test_a_new_shell_finds_the_data_the_checkpoint_trained_on(tmp_path, trained_run):
    """No MNIST_TINY_DATA_DIR, an empty cache and no network: eval and resume use the folder the run recorded."""
    env = {k: v for k, v in os.environ.items() if k != "MNIST_TINY_DATA_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), MNIST_TINY_DOWNLOAD="false")
    result = subprocess.run([SCRIPT, "eval", "--checkpoint", str(trained_run / "best.pt"), "--json"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n"] == 10_000
    # with nothing recorded and nothing given, the message says where to point
    result = subprocess.run([SCRIPT, "eval"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1 and "--data-dir" in result.stderr and "MNIST_TINY_DATA_DIR" in result.stderr


def test_set_errors_name_the_set_flag_and_flags_show_no_value():
    result = CliRunner().invoke(app, ["train", "--set", "rotate=abc"])
    assert result.exit_code == 2 and "--set rotate=abc" in result.output and "--rotate" not in result.output
    help_text = CliRunner().invoke(app, ["train", "-h"], env={"COLUMNS": "120"}).output
    json_line = next(line for line in help_text.splitlines() if "--json" in line)
    assert "<bool>" not in json_line and "bool" not in help_text
    assert "<sgd|adamw>" in help_text
    assert "--show-completion" in CliRunner().invoke(app, ["-h"], env={"COLUMNS": "120"}).output


def test_runs_side_by_side_sorted_on_validation_with_a_plot(tmp_path, trained_run):
    root = tmp_path / "runs"
    shutil.copytree(trained_run, root / "finished")
    shutil.copytree(trained_run, root / "sweep" / "seed-1")
    (root / "sweep" / "seed-1" / "summary.json").unlink()  # interrupted before it was scored
    rows = [json.loads(line) for line in (root / "sweep" / "seed-1" / "metrics.jsonl").read_text().splitlines()]
    (root / "sweep" / "seed-1" / "metrics.jsonl").write_text(json.dumps({**rows[0], "val_acc": 0.5}) + "\n")
    (root / "broken").mkdir()
    (root / "broken" / "settings.json").write_text("{not json")
    result = CliRunner().invoke(app, ["runs", str(root), "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [r["name"] for r in listed] == ["runs/finished", "runs/sweep/seed-1", "runs/broken"]
    finished, partial, broken = listed
    summary = json.loads((trained_run / "summary.json").read_text())
    assert finished["best_test_acc"] == summary["best_test_acc"] and finished["status"] == "finished"
    assert finished["params"] == 6926 and finished["seed"] == 3 and finished["train_images"] == 4000
    assert partial["status"] == "interrupted" and partial["epochs_done"] == 1 and partial["best_val_acc"] == 0.5
    assert partial.get("best_test_acc") is None and "cannot read" in broken["error"]

    plot = tmp_path / "runs.png"
    table = CliRunner().invoke(app, ["runs", str(root), "--plot", str(plot)])
    words = " ".join(table.output.split())  # whatever the terminal's width did to the lines
    assert table.exit_code == 0 and "not finished" in words and "3 runs" in words
    assert Image.open(plot).size[0] == 1100
    again = CliRunner().invoke(app, ["runs", str(root), "--plot", str(plot)])
    assert again.exit_code == 2 and "exists" in again.output
    assert CliRunner().invoke(app, ["runs", str(tmp_path / "nope")]).exit_code == 2


def test_a_seed_sweep_writes_one_combined_summary(tmp_path, mnist):
    base = tmp_path / "sweep"
    result = CliRunner().invoke(app, ["train", "--model", "lean-6k", "--seeds", "1,2", "--epochs", "1", "--subset",
                                      "512", "--val-size", "500", "--out", str(base), "--json"])
    assert result.exit_code == 0, result.output
    sweep = json.loads((base / "sweep.json").read_text())
    assert sweep == json.loads(result.stdout)
    assert [r["seed"] for r in sweep["runs"]] == [1, 2] and sweep["seeds"] == [1, 2]
    accs = [r["last_test_acc"] for r in sweep["runs"]]
    assert abs(sweep["stats"]["last_test_acc"]["mean"] - sum(accs) / 2) < 1e-12


def test_curve_axes_stay_within_what_the_quantity_can_be():
    from mnist_tiny.ui.plots import axis_range

    lo, hi = axis_range([0.99, 1.0], floor=0.0, ceiling=1.0)
    assert hi == 1.0 and lo < 0.99
    lo, hi = axis_range([0.0, 0.3], floor=0.0)
    assert lo == 0.0 and hi > 0.3


def test_every_plot_lays_out_without_collisions_at_two_sizes(tmp_path):
    """Curves, runs, confusion and reliability, drawn by matplotlib at their size and at a small one: title,
    legends and charts (tick labels included) never overlap or leave the picture; and the check does see a
    legend drawn over a chart."""
    from mnist_tiny.ui import plots

    history = [{"epoch": i + 1, "train_loss": 1 / (i + 1), "val_loss": 1.1 / (i + 1), "train_acc": 0.9 + 0.009 * i,
                "val_acc": 0.91 + 0.008 * i} for i in range(12)]
    bins = [{"confidence": 0.55 + 0.05 * k, "accuracy": 0.5 + 0.055 * k, "count": 10 * k + 1} for k in range(9)]
    confusion = [[980 if i == j else (i * j) % 7 for j in range(10)] for i in range(10)]
    for scale in (1.0, 0.6):
        wide, square = (11 * scale, 4.7 * scale), (6.4 * scale, 6.4 * scale)
        figures = {
            "curves": plots.training_curves(history, tmp_path / "c.png", "fast-6k · seed 0", size=wide),
            "runs": plots.runs_curves([(f"runs/a-long-run-name-{k}", history) for k in range(7)], tmp_path / "r.png",
                                      "7 runs", size=(wide[0], wide[1] + 1.0 * scale)),
            "confusion": plots.confusion_heatmap(confusion, tmp_path / "m.png", "fast-6k · test", size=square),
            "reliability": plots.reliability_diagram([("raw", {"bins": bins, "ece": 0.012}),
                                                      ("calibrated", {"bins": bins, "ece": 0.004})],
                                                     tmp_path / "l.png", "fast-6k · val · reliability", size=square),
        }
        for name, fig in figures.items():
            assert plots.layout_problems(fig) == [], (name, scale, plots.layout_problems(fig))
            drawn = tmp_path / ({"curves": "c", "runs": "r", "confusion": "m", "reliability": "l"}[name] + ".png")
            assert Image.open(drawn).size == tuple(round(v * 100) for v in fig.get_size_inches())
    bad = plots.training_curves(history, tmp_path / "bad.png", "title")
    bad.legends[0].remove()
    bad.axes[0].legend(loc="center", fontsize=30)  # a legend over the data
    bad.legend(["x"], loc="upper left", fontsize=40)
    bad.canvas.draw()
    assert plots.layout_problems(bad), "the check must notice a legend over a chart"


def test_plots_import_matplotlib_only_when_drawing():
    code = ("import sys; import mnist_tiny.ui.plots, mnist_tiny.training.finish, mnist_tiny.cli.app; "
            "print('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_params_keeps_every_layer_name_and_figure_whole_in_a_narrow_pipe():
    """`params` at 80 and 60 columns, as the installed command prints it in a pipe: no name or figure cut short;
    where the names do not fit beside the figures, the rows are numbered and the names listed below."""
    summary = json.loads(subprocess.run([SCRIPT, "params", "--model", "fast-25k", "--json"], capture_output=True,
                                        text=True, timeout=120).stdout)
    for columns in ("80", "60"):
        shown = subprocess.run([SCRIPT, "params", "--model", "fast-25k"], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": columns}, timeout=120)
        assert shown.returncode == 0, shown.stderr
        assert "…" not in shown.stdout, shown.stdout
        table = [line for line in shown.stdout.splitlines() if line[:1] in "┏┃┡│└"]
        assert len(table) == len(summary["layers"]) + 4 and max(map(len, table)) <= int(columns), shown.stdout
        for k, layer in enumerate(summary["layers"], 1):
            shape = "×".join(map(str, layer["output_shape"]))
            row = table[2 + k]  # after the top border, the header and its rule
            assert f" {shape} " in row and (layer["name"] in row or f"#{k} " in row), (row, layer)
            if layer["name"] not in row:
                assert f"#{k} {layer['name']} · {layer['type']}" in shown.stdout.splitlines(), shown.stdout
            if layer["macs"]:
                assert f" {layer['macs']:,} " in row, (row, layer)
    assert "#1 normalize · Normalize" in shown.stdout  # 60 columns: the numbered layout


def test_narrow_terminals_keep_every_name_and_figure_whole(tmp_path, trained_run):
    """`runs` at 80 and 60 columns, as the installed command prints it: every run's name and figures whole (rows
    numbered and names listed below when they do not fit); `eval … | head -2` keeps the accuracy; help at 80
    columns never breaks inside a word."""
    root = tmp_path / "runs"
    long_name = "a-rather-long-run-directory-name-for-the-seed-twelve"
    for name in ("short", long_name):
        shutil.copytree(trained_run, root / name)
    accuracy = f"{100 * json.loads((trained_run / 'summary.json').read_text())['best_test_acc']:.2f}%"
    for columns in ("80", "60"):
        env = {**os.environ, "COLUMNS": columns}
        shown = subprocess.run([SCRIPT, "runs", str(root)], capture_output=True, text=True, env=env, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert f"runs/{long_name}" in shown.stdout and "runs/short" in shown.stdout, shown.stdout
        assert accuracy in shown.stdout and "…" not in shown.stdout, shown.stdout
        table = [line for line in shown.stdout.splitlines() if not line.startswith("#")]  # the list below: one a line
        assert max(len(line) for line in table) <= int(columns), shown.stdout
    head = subprocess.run(f"{SCRIPT} eval --checkpoint {root / long_name / 'best.pt'} | head -2", shell=True,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, timeout=120)
    assert head.stdout.splitlines()[1].startswith("accuracy "), head.stdout
    from mnist_tiny.choices import Count, Scheduler, Sort, Split

    for command, choices in (("train", Scheduler), ("eval", Split), ("check", Count), ("runs", Sort)):
        text = subprocess.run([SCRIPT, command, "-h"], capture_output=True, text=True,
                              env={**os.environ, "COLUMNS": "80"}).stdout
        words = set(re.findall(r"[\w-]+", text))
        assert set(typing.get_args(choices)) <= words, (command, text)  # each choice whole, on one line
    runs_help = subprocess.run([SCRIPT, "runs", "-h"], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": "100"}).stdout
    assert "holding them ." not in runs_help and "training loss" in runs_help


def test_train_says_its_whole_time_and_check_skips_what_a_bare_state_dict_cannot_say(tmp_path, trained_run):
    import torch

    result = CliRunner().invoke(app, ["train", "--model", "s6-compact", "--epochs", "1", "--subset", "500",
                                      "--val-size", "500", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert " in all, with start-up, scoring and files)" in result.output
    bare = tmp_path / "weights.pt"
    torch.save(torch.load(trained_run / "best.pt", weights_only=True)["state_dict"], bare)
    checked = CliRunner().invoke(app, ["check", "--model", "s6-compact", "--checkpoint", str(bare), "--max-epochs",
                                       "15", "--min-acc", "50", "--max-params", "20000", "--require", ""])
    assert checked.exit_code == 0, checked.output
    assert "epochs: not checked" in " ".join(checked.output.split())
