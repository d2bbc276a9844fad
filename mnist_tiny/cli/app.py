"""The `mnist-tiny` command line: parse, call the Python API, render. Heavy imports happen inside commands.

The app and what its commands share live in `cli/core.py`; a command family of its own in its own module
(`cli/tune.py`), registered by importing it below."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from mnist_tiny.choices import Count, Device, Expect, ExportFormat, Optimizer, Scheduler, Sort, Split
from mnist_tiny.cli.core import MODEL_HELP, _finite, _is_main_process, _parse_set, _print_json, app, command  # noqa: F401
from mnist_tiny.errors import UserError
from mnist_tiny.process_imports import importing_torch

@app.command()
@command
def train(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    recipe: Optional[str] = typer.Option(None, help="Train with this registry model's recipe, e.g. fast-11k."),
    epochs: Optional[int] = typer.Option(None, help="Number of epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Images per batch."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate."),
    optimizer: Optional[Optimizer] = typer.Option(None, help="Optimizer."),
    scheduler: Optional[Scheduler] = typer.Option(None, help="Learning-rate schedule."),
    weight_decay: Optional[float] = typer.Option(None, help="Weight decay (not applied to BN and biases)."),
    seed: Optional[int] = typer.Option(None, help="Random seed (data order, augmentation, init, val split)."),
    seeds: Optional[str] = typer.Option(None, help="Train once per seed, e.g. 1,2,3,4,5, and print mean ± std."),
    val_size: Optional[int] = typer.Option(None, help="Training images held out for validation."),
    subset: Optional[int] = typer.Option(None, help="Train on the first N training images (smoke runs)."),
    data_dir: Optional[Path] = typer.Option(None, help="Directory holding MNIST/raw/ (env MNIST_TINY_DATA_DIR)."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default: a new one in runs/, named after the model and the time)."),
    device: Optional[Device] = typer.Option(None, help="Where to compute."),
    config: Optional[Path] = typer.Option(None, help="TOML file with settings."),
    set_: List[str] = typer.Option([], "--set", help="Any other setting, KEY=VALUE (repeatable)."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run whose last.pt this is."),
    json_out: bool = typer.Option(False, "--json", help="Print the run summary as JSON (no progress display)."),
) -> None:
    """Train a model; writes best.pt, last.pt, metrics.jsonl, settings.json and curves.png to a run directory."""
    with importing_torch():  # torch comes in with these
        from mnist_tiny.models.refs import is_registry_name
        from mnist_tiny.settings import Settings, resolve_settings
        from mnist_tiny.training.loop import train as run_training
        from mnist_tiny.training.rundir import run_name
        from mnist_tiny.training.signals import TrainingInterrupted
        from mnist_tiny.ui import render

    named = {"model": model, "recipe": recipe, "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
             "scheduler": scheduler, "weight_decay": weight_decay, "seed": seed, "val_size": val_size,
             "subset": subset, "data_dir": data_dir, "out": out, "device": device}
    # A named flag left out must not hide the same key given with --set.
    sets = _parse_set(set_)
    flags = {**sets, **{k: v for k, v in named.items() if v is not None}}
    seed_list = _parse_seeds(seeds) if seeds else None
    if seed_list and resume:
        raise UserError("--seeds and --resume cannot be combined; resume each seed's run on its own", 2)
    settings = resolve_settings(named, config, sets=sets)
    if resume is not None:
        settings = _resume_settings(resume, settings, flags)
    main_process = _is_main_process()
    quiet = json_out or not main_process
    stdout = render.console if not quiet else render.err_console

    def one_run(s: Settings) -> dict[str, Any]:
        reporter = None if quiet else render.reporter_for(stdout)
        try:
            return run_training(s, reporter, resume)
        except TrainingInterrupted as e:
            if reporter:
                reporter.close()
            if main_process:
                procs = int(os.environ.get("WORLD_SIZE", "1"))
                launcher = f"torchrun --nproc-per-node {procs} -m mnist_tiny" if procs > 1 else "mnist-tiny"
                again = f"{launcher} train --resume {shlex.quote(str(e.checkpoint))}"
                if not is_registry_name(s.model):
                    again += f" --model {shlex.quote(s.model)}"
                render.error(f"interrupted; saved {e.checkpoint}. Continue with: {again}")
            raise typer.Exit(130 if e.signum == 2 else 143) from None
        finally:
            if reporter:
                reporter.close()

    if seed_list is None:
        summary = one_run(settings)
        if not main_process:
            return
        if json_out:
            _print_json(summary)
        else:
            render.train_summary(summary)
        return

    base = settings.out or Path("runs") / f"{run_name(settings.model)}-seeds-{'-'.join(map(str, seed_list))}"
    summaries = []
    for seed_value in seed_list:
        s = settings.model_copy(update={"seed": seed_value, "out": Path(base) / f"seed-{seed_value}"})
        summaries.append(one_run(s))
        if not quiet:
            render.train_summary(summaries[-1])
    if not main_process:
        return
    from mnist_tiny.evaluation.runs import sweep_stats
    from mnist_tiny.training.rundir import write_text_atomic

    sweep = {"model": settings.model, "seeds": seed_list, "runs": summaries, "stats": sweep_stats(summaries)}
    write_text_atomic(Path(base) / "sweep.json", json.dumps(_finite(sweep), indent=2, allow_nan=False) + "\n")
    if json_out:
        _print_json(sweep)
    else:
        render.sweep_table(summaries)
        render.console.print(f"wrote {Path(base) / 'sweep.json'} (every seed's summary, mean ± std)", highlight=False,
                             soft_wrap=True)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected a comma-separated list of integers, e.g. 1,2,3", 2) from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r}: expected distinct non-negative integers, e.g. 1,2,3", 2)
    return seeds


def _resume_settings(resume: Path, current, flags: dict[str, Any]):
    """A resumed run keeps its recorded settings; only where the data lives and what runs it may change.

    Unless told otherwise it runs as recorded (the same processes and threads: another split of each batch would
    continue on another path) and reads the data from where it did, if MNIST is still there."""
    from mnist_tiny.models.refs import is_registered
    from mnist_tiny.parallel.policy import usable_cores
    from mnist_tiny.settings import Settings, data_dir_for
    from mnist_tiny.training.checkpoint import read_checkpoint, recorded_settings

    state = read_checkpoint(resume)
    saved = recorded_settings(state, resume)
    changeable = {"data_dir", "device", "threads", "processes", "download", "mirror", "verify_data"}
    recorded = saved.get("model")
    users_model = isinstance(recorded, str) and not is_registered(recorded)
    if users_model:
        # A user's model: its code runs only when the user names it, so resuming needs --model again.
        if flags.get("model") is None:
            raise UserError(f"--resume {resume}: the run trains your model {recorded}, whose code is never run by "
                            f"itself; add --model {recorded}", 2)
        changeable.add("model")
    conflicting = [k for k, v in flags.items() if v is not None and k not in changeable and k in saved
                   and str(saved[k]) != str(v)]
    if conflicting:
        raise UserError(f"--resume {resume}: cannot change {', '.join(conflicting)} of a run in progress", 2)
    given = current.model_fields_set  # fields some source (flag, --set, env, config) gave
    keep = {k: getattr(current, k) for k in changeable if k in given or k not in saved}
    position = state.get("resume") if isinstance(state.get("resume"), dict) else {}
    cores = usable_cores()
    recorded_procs, recorded_threads = position.get("processes"), position.get("threads")
    if ("processes" not in given and "threads" not in given and isinstance(recorded_procs, int)
            and recorded_procs <= 4 * cores):  # on a smaller machine than the run's, the usual choice
        keep["processes"] = recorded_procs
        if isinstance(recorded_threads, int) and recorded_threads <= 4 * cores:
            keep["threads"] = recorded_threads
    keep["data_dir"] = data_dir_for(current, saved.get("data_dir"))
    if "fast_kernels" not in saved:  # recorded before the setting: a user's model then trained on torch's layers
        keep["fast_kernels"] = not users_model
    try:
        return Settings.model_validate({**saved, **keep})
    except Exception as e:
        raise UserError(f"checkpoint {resume}: recorded settings are invalid ({_first_problem(e)})", 2) from None


def _first_problem(e: Exception) -> str:
    errors = getattr(e, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(map(str, first['loc'])) or 'settings'}: {first['msg']}"
    return " ".join(str(e).split())[:200]


@app.command()
@command
def runs(
    paths: List[Path] = typer.Argument(None, help="Run directories, or folders holding them (default: runs).",
                                       show_default=False),
    sort: Sort = typer.Option("val", help="Order: best validation accuracy first (val), or by another column."),
    plot: Optional[Path] = typer.Option(None, help="Also draw every run's validation accuracy and training loss to this PNG."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Compare runs side by side: model, params, epochs, val and test accuracy, time, seed, data."""
    from mnist_tiny.evaluation.runs import list_runs

    paths = paths or [Path("runs")]
    missing = [p for p in paths if not p.is_dir()]
    if missing:
        raise UserError(f"{missing[0]}: {'not a directory' if missing[0].exists() else 'no such directory'}", 2)
    if plot is not None and plot.exists():
        raise UserError(f"--plot {plot}: exists; choose a new file (nothing is overwritten)", 2)
    rows = list_runs(paths, sort)
    if not rows:
        raise UserError(f"no runs (folders with a settings.json written by `mnist-tiny train`) under "
                        f"{', '.join(map(str, paths))}")
    if plot is not None:
        from mnist_tiny.ui.plots import runs_curves

        runs_curves([(r["run"], r.get("history") or []) for r in rows if "error" not in r], plot,
                    title=f"{len(rows)} runs")
    if json_out:
        _print_json(rows)
    else:
        from mnist_tiny.ui.render import runs_table

        runs_table(rows, sort)
        if plot is not None:
            from mnist_tiny.ui.render import console

            console.print(f"wrote {plot}", highlight=False, soft_wrap=True)


@app.command()
@command
def models(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List the registered architectures, their size, and the shipped weights' test accuracy."""
    from importlib.util import find_spec

    from mnist_tiny.models.hub import model_rows, shipped_rows

    reader_only = find_spec("torch") is None  # `pip install mnist-tiny`: the shipped ONNX readers, no registry code
    rows = shipped_rows() if reader_only else model_rows()
    if json_out:
        _print_json(rows)
    else:
        from mnist_tiny.ui.render import console, models_table

        models_table(rows)
        console.print("[dim]predict and serve read with reader-6k (fast-6k tuned on digits cut out of pages, "
                      "docs/reading.md) unless --model names one of these.[/]", highlight=False)
        if reader_only:
            console.print("[dim]reader-only install: the models shipped with ONNX weights, which predict and serve "
                          "read with; pip install 'mnist-tiny\\[train]' adds training and your own models.[/]",
                          highlight=False)


def _load(checkpoint: Optional[Path], model: Optional[str], input_scaling: Optional[str] = None):
    """The model to use: a checkpoint file (with --model for a user's model), else the shipped weights of a
    registry --model (default DEFAULT_MODEL), else a user's --model as built (untrained)."""
    from mnist_tiny.models.refs import is_registry_name, resolve
    from mnist_tiny.training.checkpoint import load_checkpoint

    if checkpoint is not None:
        return load_checkpoint(checkpoint, model, input_scaling)
    if model is not None and not is_registry_name(model):
        raise UserError(f"--model {model} is your own model: also pass --checkpoint PATH with its trained weights "
                        f"(from `mnist-tiny train --model {model}` or a state dict your script saved)", 2)
    source = resolve(model)
    if not source.spec.has_weights:
        raise UserError(f"model {source.name!r} has no shipped weights; pass --checkpoint PATH from `mnist-tiny train`", 2)
    return load_checkpoint(source.spec.weights_path)


@app.command("eval")
@command
def eval_(
    checkpoint: Optional[Path] = typer.Option(None, help="A checkpoint written by `train` (default: shipped weights)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Registry: its shipped weights."),
    split: Split = typer.Option("test", help="Which images (val/train: the split the checkpoint was trained on)."),
    data_dir: Optional[Path] = typer.Option(None, help="Directory holding MNIST/raw/ (env MNIST_TINY_DATA_DIR)."),
    device: Optional[Device] = typer.Option(None, help="Where to compute."),
    config: Optional[Path] = typer.Option(None, help="TOML file with settings."),
    set_: List[str] = typer.Option([], "--set", help="Any other setting, KEY=VALUE (repeatable)."),
    report: Optional[Path] = typer.Option(None, help="Write confusion.png, errors.png and metrics.json here."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Accuracy, loss, per-class precision/recall/F1 and the confusion matrix of a model on MNIST."""
    with importing_torch():  # torch comes in with these
        from mnist_tiny.evaluation.report import run_eval
        from mnist_tiny.settings import resolve_settings

    settings = resolve_settings({"data_dir": data_dir, "device": device}, config, sets=_parse_set(set_),
                                with_recipe=False)
    loaded = _load(checkpoint, model, None if settings.input_scaling == "auto" else settings.input_scaling)
    result = run_eval(loaded, settings, split, report)
    if json_out:
        _print_json(result)
    else:
        from mnist_tiny.ui.render import eval_report

        eval_report(result)


@app.command()
@command
def params(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    checkpoint: Optional[Path] = typer.Option(None, help="Summarise the model inside this checkpoint."),
    max_params: Optional[int] = typer.Option(None, min=0, help="Fail (exit 1) if the model has more parameters."),
    count: Count = typer.Option("total", help="What --max-params counts."),
    require: Optional[str] = typer.Option(None, help="Fail unless the model computes all of: bn,dropout,gap,fc."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Per-layer table: shapes, parameters, MACs, receptive field, and the course rules.

    The rules are judged on what the model computes in a training-mode forward pass."""
    with importing_torch():  # torch comes in with these
        from mnist_tiny.course.project import model_summary
        from mnist_tiny.inspection.rules import check_rules

    summary, _ = model_summary(model, checkpoint)

    broken = check_rules(summary, max_params, require, count)
    if json_out:
        _print_json({**summary, "violations": broken} if (max_params is not None or require) else summary)
    else:
        from mnist_tiny.ui.render import params_table

        params_table(summary, broken)
    if broken:
        if json_out:
            from mnist_tiny.ui.render import error

            error("; ".join(broken))
        raise typer.Exit(1)


app.command("summarize", help="Alias of `params`.")(params)


def reader_for(checkpoint: Optional[Path], model: Optional[str]):
    """(name, logits function) for reading digits: an ONNX file, a registry model's shipped ONNX file, or by default
    the reader's own (READER_MODEL), runs on onnxruntime without importing torch; a checkpoint or a user's model
    runs on torch."""
    from mnist_tiny.embed.runtime import READER_MODEL, OnnxReader, have_onnxruntime, shipped_onnx, torch_logits

    if checkpoint is not None and checkpoint.suffix.lower() == ".onnx":
        if not have_onnxruntime():
            raise UserError(f"--checkpoint {checkpoint}: reading an ONNX file needs onnxruntime "
                            "(pip install onnxruntime)", 2)
        reader = OnnxReader(checkpoint)
        return reader.name, reader
    shipped = shipped_onnx(model or READER_MODEL) if checkpoint is None else None
    if shipped is not None and have_onnxruntime():
        reader = OnnxReader(shipped)
        return reader.name, reader
    from importlib.util import find_spec

    from mnist_tiny.models.refs import is_registry_name

    if checkpoint is None and model and is_registry_name(model) and find_spec("torch") is None:
        from mnist_tiny.models.hub import shipped_name_error

        raise shipped_name_error(model)  # a typo says so, not "this needs torch"
    loaded = _load(checkpoint, model)
    return loaded.name, torch_logits(loaded.model, loaded.raw.get("temperature"))


@app.command()
@command
def export(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Registry: its shipped weights."),
    checkpoint: Optional[Path] = typer.Option(None, help="A checkpoint written by `train` (with --model for yours)."),
    out: Path = typer.Option(..., help="The .onnx file to write (a new file).", show_default=False),
    format: ExportFormat = typer.Option("onnx", help="File format."),
    data_dir: Optional[Path] = typer.Option(None, help="Directory holding MNIST/raw/, to check the export."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Write a model as ONNX (N×1×28×28 in [0, 1] → N×10 logits) and check it on the 10,000 test images."""
    if out.exists():
        raise UserError(f"--out {out}: exists; choose a new file (nothing is overwritten)", 2)
    with importing_torch():  # torch comes in with these
        from mnist_tiny.data.mnist import load_mnist
        from mnist_tiny.embed.export import export_onnx, verify
        from mnist_tiny.models.registry import count_params
        from mnist_tiny.settings import resolve_settings

    settings = resolve_settings({"data_dir": data_dir}, with_recipe=False)
    test = load_mnist(settings.data_dir, settings.download, settings.mirror)["test"]  # before writing anything
    loaded = _load(checkpoint, model)
    recorded = (loaded.meta or {}).get("test_acc")
    meta = {"model": loaded.name, "params": str(count_params(loaded.model)), "source": str(loaded.path),
            "input_scaling": "inside the graph", **({"recorded_test_acc": f"{recorded:.4f}"} if recorded else {})}
    from mnist_tiny.evaluation.calibration import usable_temperature

    temperature = usable_temperature(loaded.raw.get("temperature"))  # fitted on validation when training finished
    if temperature is None and checkpoint is None:
        from mnist_tiny.embed.runtime import shipped_temperature

        temperature = shipped_temperature(loaded.name)
    if temperature is not None and temperature != 1.0:
        meta["temperature"] = f"{temperature:.6f}"  # `predict --checkpoint FILE.onnx` reads with it
    path = export_onnx(loaded.model, out, meta)
    check = verify(path, loaded.model, test.images, test.labels)
    result = {"model": loaded.name, "out": str(path), **check}
    if check["onnx_acc"] != check["torch_acc"]:
        path.unlink()
        raise UserError(f"export of {loaded.name}: onnxruntime scores {100 * check['onnx_acc']:.2f}% where torch "
                        f"scores {100 * check['torch_acc']:.2f}%; {path} was removed")
    if json_out:
        _print_json(result)
    else:
        from mnist_tiny.ui.render import console

        console.print(f"wrote {path} ({check['bytes']:,} bytes) · {loaded.name}", highlight=False, soft_wrap=True)
        console.print(f"checked on the {check['images']:,} test images: onnxruntime {100 * check['onnx_acc']:.2f}% · "
                      f"torch {100 * check['torch_acc']:.2f}% · same digit {100 * check['same_digit']:.2f}% · "
                      f"max |logit difference| {check['max_logit_diff']:.2e}", highlight=False, soft_wrap=True)


@app.command()
@command
def predict(
    images: List[str] = typer.Argument(..., help="Image files or directories of images.", show_default=False),
    checkpoint: Optional[Path] = typer.Option(None, help="A checkpoint written by `train` (default: shipped weights)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Registry: its shipped weights."),
    expect: Expect = typer.Option("auto", help="What an image holds: auto decides; one digit; many (a number)."),
    top_k: int = typer.Option(3, "--top-k", min=1, max=10, help="How many candidates to show per digit."),
    show: bool = typer.Option(False, "--show", help="Also draw the digits found and the 28×28s the model saw."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """Read the digit, or the number, in each image (PNG, JPEG, BMP, GIF, WebP…, any size, dark-on-light or
    light-on-dark, plain, ruled or squared paper).

    Exit 1 when a file cannot be read, or when no image held a digit."""
    from mnist_tiny.reader.predict import predict_files

    name, logits = reader_for(checkpoint, model)
    results = predict_files(logits, images, top_k=top_k, keep_inputs=show and not json_out, expect=expect)
    if json_out:
        _print_json(results)
    else:
        from mnist_tiny.ui.render import predict_table

        predict_table(results, name, show)
    from mnist_tiny.ui.render import error

    failed = [r for r in results if "error" in r]
    for r in failed:
        error(f"{r['path']}: {r['error']}")
    read_some = any(r.get("text") for r in results)
    if not read_some and len(failed) < len(results):
        error("no digit was read in " + ("this image" if len(results) == 1 else f"any of the {len(results)} images"))
    if failed or not read_some:
        raise typer.Exit(1)


@app.command()
@command
def serve(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP + " Registry: its shipped weights."),
    checkpoint: Optional[Path] = typer.Option(None, help="An .onnx file or a checkpoint written by `train`."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port."),
    workers: int = typer.Option(1, min=1, max=64, help="Server processes (an ONNX model: one per core pays)."),
) -> None:
    """Serve a draw-a-digit page at / and a JSON API (POST /predict, GET /models, /health, /docs)."""
    from mnist_tiny.embed.server import check_port, serve as run_server
    from mnist_tiny.ui.render import console

    name, reader = reader_for(checkpoint, model)
    source = str(reader.path) if hasattr(reader, "path") else None
    if workers > 1 and source is None:
        raise UserError("--workers above 1 serves an ONNX model (a shipped one, or --checkpoint FILE.onnx from "
                        "`mnist-tiny export`)", 2)
    if host not in ("127.0.0.1", "localhost", "::1"):
        from mnist_tiny.ui.render import warning

        warning(f"--host {host}: the server has no authentication; anyone who can reach this machine on port "
                f"{port} can use it")
    check_port(host, port)
    console.print(f"serving {name} on http://{host}:{port}/ (API docs at /docs) · {workers} worker"
                  f"{'s' if workers > 1 else ''} · Ctrl-C stops", highlight=False, soft_wrap=True)
    run_server(reader, name, host, port, workers, source)


@app.command()
@command
def check(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    checkpoint: Optional[Path] = typer.Option(None, help="Also judge this checkpoint's test accuracy."),
    max_params: int = typer.Option(20_000, min=0, help="At most this many parameters."),
    count: Count = typer.Option("total", help="What --max-params counts."),
    require: str = typer.Option("bn,dropout,gap,fc", help="What the model must compute (empty: nothing)."),
    min_acc: Optional[float] = typer.Option(None, help="Test accuracy in % the checkpoint must reach [99.4]."),
    max_epochs: Optional[int] = typer.Option(None, min=1, help="The checkpoint trained at most this many epochs."),
    data_dir: Optional[Path] = typer.Option(None, help="Directory holding MNIST/raw/ (env MNIST_TINY_DATA_DIR)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """A course's CI test: parameter budget, structure rules and (with --checkpoint) accuracy.

    Exit 0 when every check passes, 1 otherwise."""
    from mnist_tiny.course.project import check as run_check
    from mnist_tiny.settings import resolve_settings

    settings = resolve_settings({"data_dir": data_dir}, with_recipe=False) if checkpoint else None
    result = run_check(model, checkpoint, max_params, require, count, min_acc, max_epochs, settings)
    if json_out:
        _print_json(result)
    else:
        from mnist_tiny.ui.render import check_table

        check_table(result)
    if not result["passed"]:
        raise typer.Exit(1)


@app.command()
@command
def new(folder: Path = typer.Argument(..., help="A new or empty directory.", show_default=False)) -> None:
    """Start a course project: model.py, pytest tests, a CI workflow and a README.

    The model passes the rules; the workflow checks the rules, runs the tests and a short training."""
    from mnist_tiny.course.project import new_project
    from mnist_tiny.ui.render import console

    for path in new_project(folder):
        console.print(f"wrote {path}", highlight=False)
    console.print(f"next: cd {shlex.quote(str(folder))} && mnist-tiny params --model model.py:Net", highlight=False)


@app.command()
@command
def bench(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    batch_size: Optional[int] = typer.Option(None, help="Images per batch."),
    images: int = typer.Option(25_600, min=1, help="Training images to time (one 'epoch' of the benchmark)."),
    baseline: bool = typer.Option(False, "--baseline", help="Also time the classic per-sample torchvision pipeline."),
    runs: int = typer.Option(3, min=1, help="Runs per pipeline, each a whole process (interleaved); figures are medians."),
    data_dir: Optional[Path] = typer.Option(None, help="Directory holding MNIST/raw/ (env MNIST_TINY_DATA_DIR)."),
    device: Optional[Device] = typer.Option(None, help="Where to compute."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Training and inference images/s on this machine; with --baseline, the speed-up over the classic pipeline."""
    with importing_torch():  # torch comes in with these
        from mnist_tiny.settings import resolve_settings
        from mnist_tiny.training.bench import bench as run_bench

    settings = resolve_settings({"model": model, "batch_size": batch_size, "data_dir": data_dir, "device": device})
    result = run_bench(settings, images, baseline, runs)
    if json_out:
        _print_json(result)
    else:
        from mnist_tiny.ui.render import bench_table

        bench_table(result)


from mnist_tiny.cli import tune as _tune  # noqa: E402,F401 — registers `tune` (its own module)


def main() -> None:
    # BLAS on one thread (unless the user set it): the reader's resampling is small matrix products, which OpenBLAS
    # would split over threads that wait for a core another server worker holds. Before numpy is first imported;
    # torch's own threads are set apart (MNIST_TINY_THREADS).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        app()
    except SystemExit as e:
        from mnist_tiny.process_exit import quick_exit

        quick_exit(e.code)
        raise
    finally:
        if "mnist_tiny.parallel.distributed" in sys.modules:  # only under torchrun is a group still open here
            sys.modules["mnist_tiny.parallel.distributed"].leave()

