"""`mnist-tiny tune`: a search over training recipes with Optuna, judged on validation only.

Each trial is an ordinary `train` run (its own folder under the study's `trials/`, which `runs` lists) with
`test = false`: the test files are not even read, and no trial's record holds a test figure. The objective is
the last epoch's validation accuracy (the recipe's result, not its luckiest epoch); every epoch's validation
accuracy goes to the pruner, which stops trials that trail the others. A study lives in a storage (SQLite in the
study folder by default, or any URL Optuna takes, e.g. PostgreSQL for several machines), so the same command
continues it; a trial killed or interrupted is marked failed and never counted. `--confirm K` trains the best
recipe on K seeds and reports the test accuracy once, at the very end.
"""

from __future__ import annotations

import math
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from mnist_tiny.errors import UserError

OBJECTIVE = "last_val_acc"
# A trial whose process stops beating for GRACE_SECONDS (killed, its machine gone) is marked failed by the next
# command on the study; the heartbeat runs beside training, so a slow epoch does not look dead.
HEARTBEAT_SECONDS, GRACE_SECONDS = 5, 15


def mask(url: str) -> str:
    """A storage URL with its password hidden: postgresql://user:***@host/db."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def open_study(storage: str, name: str, model: str, seed: int, pruner: str = "median"):
    """Create or load the study; refuse one that searches another model. Trials that a killed process left
    RUNNING (no heartbeat for a minute) are marked failed first."""
    import warnings

    import optuna
    from optuna.storages import RDBStorage

    # Optuna's own warnings repeat, with a traceback, the failure that the command reports in one line.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # Heartbeats (how a killed worker's trial is found and failed) are "experimental" in Optuna's words only.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    chosen = (optuna.pruners.SuccessiveHalvingPruner() if pruner == "halving"
              else optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    try:
        with _one_at_a_time(storage):
            engine = _storage(_steady_storage(RDBStorage), storage)
            study = _retry(lambda: optuna.create_study(
                study_name=name, storage=engine, direction="maximize", load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=seed), pruner=chosen))
    except ImportError:
        raise UserError(f"--storage {mask(storage)}: its database driver is not installed (PostgreSQL: pip install "
                        "'psycopg[binary]', which the [test] extra brings)", 1) from None
    except Exception as e:  # noqa: BLE001 — SQLAlchemy's and the drivers' own errors: one line, password masked
        if type(getattr(e, "orig", None)).__name__ == "LockNotAvailable":
            raise UserError(f"--storage {mask(storage)}: another process has been opening a study there for "
                            f"{LOCK_SECONDS} s (it holds advisory lock {LOCK_KEY}); try again once it is done",
                            1) from None
        first = " ".join(str(e).split())[:200].replace(storage, mask(storage))
        raise UserError(f"--storage {mask(storage)}: cannot open the study's storage ({type(e).__name__}: "
                        f"{mask(first)})", 1) from None
    recorded = study.user_attrs.get("model")
    if recorded is None:
        study.set_user_attr("model", model)
        study.set_user_attr("objective", f"{OBJECTIVE} (validation)")
    elif recorded != model:
        raise UserError(f"study {name!r} in {mask(storage)} searches model {recorded!r}, not {model!r}; "
                        "choose another --study-name (or --study folder)", 2)
    optuna.storages.fail_stale_trials(study)
    return study


# Two workers that start together on an empty database race to create the same tables and the same study; the
# loser's error names one of these (SQLAlchemy's class, or the driver's beneath it: PostgreSQL reports a table
# created under it as DuplicateTable, a type as UniqueViolation).
RACES = {"IntegrityError", "UniqueViolation", "DuplicateTable", "DuplicateObject", "DuplicatedStudyError"}
LOCK_KEY = 0x6D6E6973  # "mnis": the advisory lock that serializes opening a study on one PostgreSQL database
LOCK_SECONDS = 60  # how long a worker waits for it


def _is_race(e: BaseException) -> bool:
    return bool({type(e).__name__, type(getattr(e, "orig", None)).__name__} & RACES)


def _retry(make):
    """`make()`, tried again (six times at most, 0.3–2.3 s apart) when it lost that race."""
    for attempt in range(6):
        try:
            return make()
        except Exception as e:  # noqa: BLE001 — re-raised unless it is that race
            if attempt == 5 or not _is_race(e):
                raise
            time.sleep(0.3 + 0.4 * attempt)
    raise AssertionError("unreachable")


@contextmanager
def _one_at_a_time(url: str):
    """On PostgreSQL, hold an advisory lock while the tables and the study are created or read, so that workers
    that start together take turns instead of racing (the retries stay for databases without such a lock). The
    lock belongs to a transaction of its own, so it ends with it whatever happens (and a pooler in transaction
    mode keeps it on one server connection); the wait is bounded: a lock held for LOCK_SECONDS (a worker stuck
    while opening) is an error, not a hang."""
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection, connection.begin():
            connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_SECONDS}s'")
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({LOCK_KEY})")
            yield
    finally:
        engine.dispose()


def _storage(make, url: str):
    """The storage, its tables created if they are missing."""
    # SQLite: a writer waits up to 30 s for another's lock (not pysqlite's 5) before it gives up.
    return _retry(lambda: make(url, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                               engine_kwargs={"connect_args": {"timeout": 30}} if url.startswith("sqlite")
                               else {"pool_pre_ping": True}))


def _steady_storage(base):
    """Optuna's RDB storage with two repairs that several workers on one study need.

    A waiting trial (the start recipe, enqueued as trial 0) goes to one worker only: Optuna reads its state with
    SELECT … FOR UPDATE and then sets it, and SQLite ignores FOR UPDATE, so two workers starting together both ran
    trial 0, in one folder (the second failed, and the first then could not report). Here taking it is one
    conditional UPDATE, which any database does atomically. And a heartbeat that cannot be written (the database
    busy) is tried again at the next beat: Optuna's beating thread would end, and 15 s later another worker would
    fail a trial that is still training."""
    from datetime import datetime

    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    class SteadyStorage(base):
        def set_trial_state_values(self, trial_id, state, values=None):
            if state != TrialState.RUNNING or values is not None:
                return super().set_trial_state_values(trial_id, state, values)
            table = models.TrialModel
            take = (sqlalchemy.update(table)
                    .where(table.trial_id == trial_id, table.state == TrialState.WAITING)
                    .values(state=TrialState.RUNNING, datetime_start=datetime.now()))
            with self.engine.begin() as connection:
                return connection.execute(take).rowcount == 1  # 0: another worker took it, or it has finished

        def record_heartbeat(self, trial_id):
            try:
                super().record_heartbeat(trial_id)
            except Exception:  # noqa: BLE001 — a missed beat; the grace period covers a few
                pass

    return SteadyStorage


class TrialTakenOver(Exception):
    """This worker's trial was marked failed by another (its heartbeat came late: a suspended machine, a lost
    connection); the trial is lost, the worker goes on."""


def optimize(study, objective: Callable, trials: int, timeout: float | None, callback: Callable, say: Callable) -> None:
    """`study.optimize`, except that a trial taken over by another worker costs that trial and one line (`say`),
    not the worker: Optuna ends `optimize` with a ValueError when it cannot record a trial that is already failed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    done: list[int] = []
    while len(done) < trials:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        try:
            study.optimize(objective, n_trials=trials - len(done), timeout=left, gc_after_trial=False,
                           callbacks=[callback, lambda _study, trial: done.append(trial.number)])
            return
        except ValueError:
            lost = objective.taken_over  # set by the objective when its trial was taken over
            if not lost:
                raise
            say(f"trial {lost.pop()}: marked failed by another worker (no heartbeat for {GRACE_SECONDS} s); "
                f"it is not counted, this worker goes on")
            done.append(-1)


class PruningReporter:
    """A training reporter that hands each epoch's validation accuracy to the trial and stops it when the pruner
    says so (TrialPruned, raised between epochs: the run folder keeps what it did)."""

    def __init__(self, trial):
        self.trial = trial

    def start(self, info: dict[str, Any]) -> None: ...

    def epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None: ...

    def batch(self, done: int, loss: float, images_per_s: float) -> None: ...

    def epoch_end(self, row: dict[str, Any]) -> None:
        import optuna

        try:
            self.trial.report(row["val_acc"], row["epoch"])
        except optuna.exceptions.UpdateFinishedTrialError:
            raise TrialTakenOver(self.trial.number) from None
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {row['epoch']}: validation {100 * row['val_acc']:.2f}%")

    def close(self) -> None: ...


def objective_for(flags: dict[str, Any], sets: dict[str, Any], config: Path | None, space: dict, study_dir: Path,
                  runner: dict[str, Any]) -> Callable:
    """The function Optuna calls per trial: the trial's values over the fixed settings, one `train` run."""
    from mnist_tiny.process_imports import importing_torch
    from mnist_tiny.settings import resolve_settings
    from mnist_tiny.tuning.space import suggest

    with importing_torch():  # torch comes in here, in the process that trains (not a `--workers K` parent)
        from mnist_tiny.training.loop import train as run_training

    def objective(trial) -> float:
        values = suggest(trial, space)
        objective.taken_over.clear()
        out = (study_dir / "trials" / f"{trial.study.study_name}-{trial.number:04d}").resolve()
        # The trial's values over everything else (a flag such as --epochs is the budget, not the trial's value).
        s = resolve_settings({**flags, **values, **runner, "test": False, "out": out}, config, sets=sets)
        trial.set_user_attr("run", str(out))
        started = time.monotonic()
        try:
            summary = run_training(s, PruningReporter(trial))
        except TrialTakenOver:
            objective.taken_over.append(trial.number)
            raise
        trial.set_user_attr("seconds", round(time.monotonic() - started, 1))
        return float(summary[OBJECTIVE])

    objective.taken_over = []
    return objective


def runner_settings(workers: int, sets: dict[str, Any]) -> dict[str, Any]:
    """Processes and threads a trial uses, so that `workers` trials at once share the cores without
    oversubscribing them: one worker keeps train's own plan; several run one process each, cores shared out."""
    from mnist_tiny.parallel.policy import usable_cores

    if workers <= 1 or "processes" in sets or "threads" in sets:
        return {}
    return {"processes": 1, "threads": max(1, usable_cores() // workers)}


def trial_rows(study) -> list[dict[str, Any]]:
    """Every trial, as plain data: number, state, params, validation value, seconds, run folder."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.value is not None else (
            t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        rows.append({"number": t.number, "state": t.state.name.lower(), "params": dict(t.params),
                     "value": value, "epochs_done": len(t.intermediate_values),
                     "seconds": t.user_attrs.get("seconds"), "run": t.user_attrs.get("run")})
    return rows


def best_of(study) -> dict[str, Any] | None:
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if not complete:
        return None
    best = max(complete, key=lambda t: (t.value, -t.number))
    return {"number": best.number, "value": best.value, "params": dict(best.params)}


def write_best_toml(path: Path, model: str, recipe: str | None, sets: dict[str, Any], best: dict[str, Any],
                    study: str) -> Path:
    """The best recipe as a settings file that `mnist-tiny train --config` reads unchanged."""
    from mnist_tiny.training.rundir import write_text_atomic

    values = {"model": model, **({"recipe": recipe} if recipe else {}),
              **{k: v for k, v in sets.items() if k not in ("out", "test", "processes", "threads")},
              **best["params"]}
    lines = [f"# the best recipe of study {study!r}: trial {best['number']}, last-epoch validation accuracy "
             f"{100 * best['value']:.2f}%", "# mnist-tiny train --config best.toml"]
    lines += [f"{key} = {_toml(value)}" for key, value in values.items() if value is not None]
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "nan"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a basic TOML string is a JSON string


def run_workers(args: list[str], counts: list[int], quiet: bool) -> None:
    """`mnist-tiny tune` again in one process per worker (`args`, each with its own `--trials` count and one
    worker): fresh processes with their own storage connections (no forked database connections, no shared
    state). The first failure is raised here after all have stopped."""
    import subprocess
    import sys

    children = [subprocess.Popen([sys.executable, "-m", "mnist_tiny", *args, "--trials", str(n), "--workers", "1"],
                                 stdout=subprocess.DEVNULL if quiet else None) for n in counts if n > 0]
    codes = [child.wait() for child in children]
    failed = [code for code in codes if code]
    if failed:
        raise UserError(f"{len(failed)} of the {len(children)} tune workers failed (exit {failed[0]}); the study "
                        "keeps their finished trials")
