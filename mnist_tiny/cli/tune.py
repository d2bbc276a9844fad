"""`mnist-tiny tune`: parse, run the search (`mnist_tiny.tuning`), render."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, List, Optional

import typer

from mnist_tiny.cli.core import MODEL_HELP, _parse_set, _print_json, app, command
from mnist_tiny.errors import UserError


@app.command()
@command
def tune(
    model: Optional[str] = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    recipe: Optional[str] = typer.Option(None, help="Start from a registry model's recipe (e.g. course-8k)."),
    trials: int = typer.Option(10, min=1, max=10_000, help="Trials to run now (a study continues where it stopped)."),
    timeout: Optional[float] = typer.Option(None, min=1, help="Stop starting trials after this many seconds."),
    epochs: Optional[int] = typer.Option(None, min=1, max=1000, help="Epoch budget: trials train half of it to all."),
    space: Optional[Path] = typer.Option(None, help="TOML file over the default search space (see docs)."),
    study: Optional[Path] = typer.Option(None, help="Study folder: SQLite storage, trials, best.toml "
                                                    "(default: studies/<model>)."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage URL instead of the folder's SQLite file, "
                                                     "e.g. postgresql://user:pw@host/db."),
    study_name: Optional[str] = typer.Option(None, help="Study name in the storage (default: the model's name)."),
    seed: int = typer.Option(0, min=0, help="Seed of the sampler and of every trial (one validation split)."),
    pruner: str = typer.Option("median", help="Stop trailing trials early: median or halving."),
    workers: int = typer.Option(1, min=1, max=64, help="Trials at once on this machine (cores shared out)."),
    confirm: int = typer.Option(0, min=0, max=100, help="Then train the best recipe on this many seeds and report "
                                                        "its test accuracy (mean ± std, worst seed)."),
    config: Optional[Path] = typer.Option(None, help="TOML file with settings every trial uses."),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="KEY=VALUE: a setting every trial uses."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Search a training recipe on validation with Optuna: every trial an ordinary run, pruned when it trails,
    the test set never read; best.toml trains the winner (`train --config`)."""
    from mnist_tiny.models.registry import DEFAULT_MODEL
    from mnist_tiny.settings import resolve_settings
    from mnist_tiny.training import rundir
    from mnist_tiny.tuning.search import (best_of, mask, objective_for, open_study, optimize, run_workers,
                                          runner_settings, trial_rows, write_best_toml)
    from mnist_tiny.tuning.space import load_space
    from mnist_tiny.ui import render

    if pruner not in ("median", "halving"):
        raise UserError(f"--pruner {pruner!r}: median or halving", 2)
    sets = _parse_set(set_ or [])
    if "test" in sets:
        raise UserError("--set test=…: a search never reads the test set (use --confirm K for the test figure)", 2)
    flags = {"model": model, "recipe": recipe, "epochs": epochs, "seed": seed}
    base = resolve_settings(flags, config, sets=sets)  # every fixed setting checked before anything is written
    model_ref = base.model or DEFAULT_MODEL
    name = study_name or rundir.run_name(model_ref).replace("/", "-")
    searched = load_space(space, epochs)  # a bad space file is one line, before any folder is made
    searched = {k: v for k, v in searched.items() if k not in sets}  # what --set fixes is not searched
    folder = Path(study or Path("studies") / name)
    folder.mkdir(parents=True, exist_ok=True)
    url = storage or f"sqlite:///{(folder / 'study.db').resolve()}"
    runner = runner_settings(workers, sets)
    out = render.console if not json_out else render.err_console
    study_obj = open_study(url, name, model_ref, seed, pruner)
    done_before = len(study_obj.trials)
    if done_before == 0:  # trial 0 is the recipe the search starts from: the figure to beat, on the same split
        from mnist_tiny.tuning.space import within

        start = {k: v for k, v in base.model_dump(mode="json").items() if k in searched and within(searched[k], v)}
        study_obj.enqueue_trial(start, skip_if_exists=True)
    if not json_out:
        out.print(f"study {render.escape(name)} · {render.escape(mask(url))} · {done_before} trials so far · "
                  f"model {render.escape(model_ref)} · objective: last-epoch validation accuracy",
                  highlight=False, soft_wrap=True)

    show = _TrialLines(out, json_out)
    from mnist_tiny.training.signals import TrainingInterrupted

    try:
        if workers > 1:  # each worker its own process: `tune` again, one worker each, the cores shared out
            share = [trials // workers + (k < trials % workers) for k in range(workers)]
            child = _child_args(model_ref, recipe, epochs, space, folder, storage, name, seed, pruner, timeout,
                                config, set_ or [], runner)
            run_workers(child, share, json_out)
        else:
            objective = objective_for({k: v for k, v in flags.items() if v is not None}, sets, config, searched,
                                      folder, runner)
            optimize(study_obj, objective, trials, timeout, show,
                     lambda line: render.err_console.print(f"warning: {render.escape(line)}", highlight=False))
    except TrainingInterrupted:
        raise UserError(f"interrupted: the trial in progress is marked failed and never counted; the same command "
                        f"continues study {name!r}", 130) from None
    study_obj = open_study(url, name, model_ref, seed, pruner)
    rows = trial_rows(study_obj)
    best = best_of(study_obj)
    result: dict[str, Any] = {"study": name, "storage": mask(url), "folder": str(folder), "model": model_ref,
                              "objective": "last-epoch validation accuracy", "trials": rows, "best": best}
    if best is not None:
        fixed = set(sets) | {k for k in ("epochs", "seed") if flags.get(k) is not None}
        typed = {k: v for k, v in base.model_dump(mode="json").items() if k in fixed}  # as validated, not as typed
        result["best_toml"] = str(write_best_toml(folder / "best.toml", model_ref, recipe, typed, best, name))
        picture = _picture(study_obj, folder / "search.png", name)
        if picture:
            result["picture"] = str(picture)
    if confirm and best is not None:
        result["confirm"] = _confirm(folder, Path(result["best_toml"]), confirm, out if not json_out else None)
    if json_out:
        _print_json(result)
    else:
        _summary(result, out)


def _child_args(model, recipe, epochs, space, folder, storage, name, seed, pruner, timeout, config, sets,
                runner) -> list[str]:
    """The command line of one worker of `--workers K` (its --trials and --workers are added by run_workers)."""
    args = ["tune", "--model", model, "--study", str(folder), "--study-name", name, "--seed", str(seed), "--pruner",
            pruner]
    for flag, value in (("--recipe", recipe), ("--epochs", epochs), ("--space", space), ("--storage", storage),
                        ("--timeout", timeout), ("--config", config)):
        if value is not None:
            args += [flag, str(value)]
    for item in [*sets, *(f"{k}={v}" for k, v in runner.items())]:
        args += ["--set", item]
    return args


class _TrialLines:
    """Optuna's callback: one line per finished trial, under a header printed with the first."""

    def __init__(self, out, quiet: bool):
        self.out, self.quiet, self.started = out, quiet, False

    def __call__(self, study, trial) -> None:
        from mnist_tiny.tuning.search import trial_rows
        from mnist_tiny.ui.render import escape

        if self.quiet:
            return
        if not self.started:
            self.out.print(f"{'trial':>5}  {'state':<8} {'val acc':>8} {'epochs':>6} {'s':>6}  params", highlight=False)
            self.started = True
        row = next(r for r in trial_rows(study) if r["number"] == trial.number)
        value = f"{100 * row['value']:.2f}%" if row["value"] is not None else "–"
        params = " ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
        self.out.print(f"{row['number']:>5}  {row['state']:<8} {value:>8} {row['epochs_done']:>6} "
                       f"{row['seconds'] if row['seconds'] is not None else '–':>6}  {escape(params)}",
                       highlight=False, soft_wrap=True)


def _summary(result: dict[str, Any], out) -> None:
    states = [r["state"] for r in result["trials"]]
    out.print(f"{len(states)} trials: {states.count('complete')} complete, {states.count('pruned')} pruned, "
              f"{states.count('fail')} failed", highlight=False)
    best = result["best"]
    if best is None:
        out.print("no trial has finished yet: nothing to recommend", highlight=False)
        return
    out.print(f"best: trial {best['number']}, validation {100 * best['value']:.2f}% · wrote "
              f"{result['best_toml']}{' and ' + result['picture'] if 'picture' in result else ''} · train it: "
              f"mnist-tiny train --config {result['best_toml']}", highlight=False, soft_wrap=True)
    if "confirm" in result:
        c = result["confirm"]
        out.print(f"confirmed on {len(c['seeds'])} seeds: test {c['mean']:.2f} ± {c['std']:.2f}% (worst seed "
                  f"{c['worst_seed']}: {c['worst']:.2f}%)", highlight=False, soft_wrap=True)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _picture(study, path: Path, name: str) -> Path | None:
    from mnist_tiny.tuning.search import trial_rows
    from mnist_tiny.ui.plots import search_picture

    try:
        importance = _importance(study)
    except Exception:  # noqa: BLE001 — too few finished trials to weigh the parameters: the picture goes without
        importance = {}
    return search_picture(trial_rows(study), importance, path, f"study {name}")


def _importance(study) -> dict[str, float]:
    import optuna

    import warnings

    if len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) < 3:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "importances will be equal" on a handful of trials: the bars say so
        return optuna.importance.get_param_importances(study)


def _confirm(folder: Path, best_toml: Path, seeds: int, out) -> dict[str, Any]:
    """The best recipe on seeds 0…K−1 (test=true): the one time a search's result meets the test set."""
    import statistics

    from mnist_tiny.settings import resolve_settings
    from mnist_tiny.training.loop import train as run_training

    accs, runs = [], []
    for seed in range(seeds):
        s = resolve_settings({"seed": seed, "out": folder / "confirm" / f"seed-{seed}"}, best_toml,
                             sets={"test": True})
        summary = run_training(s)
        accs.append(100 * summary["last_test_acc"])
        runs.append({"seed": seed, "last_test_acc": summary["last_test_acc"], "last_val_acc": summary["last_val_acc"]})
        if out is not None:
            out.print(f"confirm seed {seed}: test {accs[-1]:.2f}% (last epoch)", highlight=False)
    worst = min(range(seeds), key=lambda i: accs[i])
    return {"seeds": list(range(seeds)), "runs": runs, "mean": statistics.fmean(accs),
            "std": statistics.stdev(accs) if seeds > 1 else 0.0, "worst": accs[worst], "worst_seed": worst,
            "command": f"mnist-tiny train --config {best_toml} --seed N", "finite": all(map(math.isfinite, accs))}
