"""`mnist-tiny tune`: Optuna's search over recipes, judged on validation, a study that lasts, and two workers on
one study in a real PostgreSQL server that the test starts."""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DATA_DIR
from mnist_tiny.cli.app import app

SCRIPT = str(Path(sys.executable).parent / "mnist-tiny")
SMALL = ["--model", "tiny-2k", "--epochs", "1", "--set", "subset=1500", "--set", "val_size=1000"]


@pytest.fixture()
def no_test_set(tmp_path, mnist):
    """MNIST's training files, and test files that are junk: a search that read them would fail."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / name).symlink_to(DATA_DIR / "MNIST" / "raw" / name)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"junk, never to be read by a search")
    return tmp_path / "data"


def test_a_study_runs_continues_and_its_best_recipe_trains(tmp_path, no_test_set, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_TINY_DATA_DIR", str(no_test_set))
    first = CliRunner().invoke(app, ["tune", *SMALL, "--trials", "3", "--study", "st", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert [t["number"] for t in report["trials"]] == [0, 1, 2]
    assert all(t["state"] in ("complete", "pruned") for t in report["trials"])
    assert (tmp_path / "st" / "study.db").is_file() and (tmp_path / "st" / "search.png").is_file()
    again = CliRunner().invoke(app, ["tune", *SMALL, "--trials", "2", "--study", "st", "--json"])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert len(report["trials"]) == 5 and len({t["number"] for t in report["trials"]}) == 5
    assert set(report["best"]) == {"number", "value", "params"}
    # No trial's record holds a test figure (and the junk test files were never read).
    text = json.dumps(report["trials"]) + "".join(p.read_text() for p in (tmp_path / "st" / "trials").rglob("*.json*"))
    assert "test_acc" not in text and "test_loss" not in text
    # best.toml is a settings file `train --config` reads unchanged; it trains the best trial's recipe again.
    best = report["best"]
    monkeypatch.setenv("MNIST_TINY_DATA_DIR", str(DATA_DIR))
    trained = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "st" / "best.toml"), "--out",
                                       str(tmp_path / "again"), "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["last_val_acc"] == best["value"]
    listed = CliRunner().invoke(app, ["runs", str(tmp_path / "st" / "trials"), "--json"])
    assert len(json.loads(listed.stdout)) == 5  # every trial is a run folder


def test_confirm_reports_the_test_set_once_at_the_end(tmp_path, mnist):
    result = CliRunner().invoke(app, ["tune", *SMALL, "--trials", "1", "--confirm", "2", "--study",
                                      str(tmp_path / "st"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    confirm = report["confirm"]
    assert confirm["seeds"] == [0, 1] and len(confirm["runs"]) == 2
    accs = [100 * r["last_test_acc"] for r in confirm["runs"]]
    assert abs(confirm["mean"] - sum(accs) / 2) < 1e-9 and confirm["worst"] == min(accs)
    assert "test_acc" not in json.dumps(report["trials"])  # the trials themselves never saw it


def test_two_workers_on_one_machine_share_the_cores_and_the_study(tmp_path, mnist):
    result = subprocess.run([SCRIPT, "tune", *SMALL, "--trials", "4", "--workers", "2", "--study", str(tmp_path / "st"),
                             "--json"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    trials = json.loads(result.stdout)["trials"]
    assert 4 <= len(trials) <= 5 and len({t["run"] for t in trials}) == len(trials)  # at most one started late
    settings = json.loads((Path(trials[-1]["run"]) / "settings.json").read_text())
    assert settings["processes"] == 1 and settings["threads"] >= 1  # one process a trial, the cores shared out


def _take_waiting_trials(url, rounds, barrier, results):
    import optuna
    from optuna.storages import RDBStorage

    from mnist_tiny.tuning import search

    study = optuna.load_study(study_name="s", storage=search._storage(search._steady_storage(RDBStorage), url))
    taken = []
    for _ in range(rounds):
        barrier.wait()  # every worker asks for the same waiting trial at once
        taken.append(study._pop_waiting_trial_id())
    results.put(taken)


def test_a_waiting_trial_goes_to_one_worker_only(tmp_path):
    # Workers that start together all ask for the enqueued start recipe; on SQLite, Optuna's own check-then-set
    # handed it to several (21 takes of 15 trials with 4 workers, measured), which then ran it in one folder.
    import multiprocessing

    import optuna

    url, rounds = f"sqlite:///{tmp_path / 'study.db'}", 15
    study = optuna.create_study(study_name="s", storage=url)
    for k in range(rounds):
        study.enqueue_trial({"x": k})
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_take_waiting_trials, args=(url, rounds, barrier, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    taken = [t for _ in workers for t in results.get(timeout=120) if t is not None]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(taken) == sorted({t._trial_id for t in study.get_trials()})  # each one, once


def test_a_trial_another_worker_failed_costs_the_trial_not_the_worker(tmp_path):
    # A worker whose heartbeat came late (a suspended machine, a lost connection) finds its trial failed by another
    # at its next report: that trial is lost with one line, and the worker runs its other trials.
    import optuna

    from mnist_tiny.tuning import search

    study = search.open_study(f"sqlite:///{tmp_path / 'study.db'}", "s", "tiny-2k", 0)

    def objective(trial):
        objective.taken_over.clear()
        if trial.number == 1:  # what fail_stale_trials in another worker does
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        try:
            search.PruningReporter(trial).epoch_end({"val_acc": 0.5, "epoch": 1})
        except search.TrialTakenOver:
            objective.taken_over.append(trial.number)
            raise
        return 0.5

    objective.taken_over, said, seen = [], [], []
    search.optimize(study, objective, 3, None, lambda _study, trial: seen.append(trial.number), said.append)
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"] and seen == [0, 2], states
    assert len(said) == 1 and said[0].startswith("trial 1: marked failed by another worker"), said


@pytest.mark.parametrize("space, words", [
    ("[learning_rate]\nlow = 0.1\nhigh = 0.2\n", ["[learning_rate] is not a setting"]),
    ("[lr]\nlow = 0.5\nhigh = 0.1\n", ["impossible range"]),
    ("[rotate]\nlow = 0.0\nhigh = 400.0\n", ["400.0 is not a value of rotate"]),
    ("[batch_size]\nchoices = []\n", ["non-empty list"]),
    ("[lr]\nlow = 0.1\nhigh = 0.2\nmean = 3\n", ["unknown: mean"]),
])
def test_a_bad_space_file_is_one_line(tmp_path, space, words):
    (tmp_path / "space.toml").write_text(space)
    result = CliRunner().invoke(app, ["tune", *SMALL, "--space", str(tmp_path / "space.toml"), "--study",
                                      str(tmp_path / "st")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for word in words:
        assert word in result.output, result.output
    assert not (tmp_path / "st").exists()  # nothing written


def test_an_unreachable_storage_is_one_line_with_its_password_masked(tmp_path):
    port = _free_port()
    result = subprocess.run([SCRIPT, "tune", *SMALL, "--storage", f"postgresql://me:s3cret@127.0.0.1:{port}/db",
                             "--study", str(tmp_path / "st")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "s3cret" not in result.stderr + result.stdout and "me:***@" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_study_of_another_model_is_refused(tmp_path, mnist):
    first = CliRunner().invoke(app, ["tune", *SMALL, "--trials", "1", "--study", str(tmp_path / "st"),
                                     "--study-name", "shared"])
    assert first.exit_code == 0, first.output
    other = CliRunner().invoke(app, ["tune", "--model", "nano-600", "--epochs", "1", "--trials", "1", "--study",
                                     str(tmp_path / "st"), "--study-name", "shared"])
    assert other.exit_code == 2 and "searches model 'tiny-2k', not 'nano-600'" in other.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def postgres():
    """A real PostgreSQL server (Debian's `postgresql`, which README's set-up installs), in a scratch cluster on
    127.0.0.1; as root its programs run as the `postgres` user, as initdb requires."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        message = "the PostgreSQL test needs Debian's postgresql (README's set-up installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + "; skipped outside CI")
    bindir = Path(bins[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="mnist-tiny-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True,
                   timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _open_after_a_stall(url: str, stall: float, start, answers) -> None:
    """A worker that opens the study once the others are ready, descheduled for `stall` seconds between checking
    which tables exist and creating them (what a loaded machine does to it now and then)."""
    import sqlalchemy.dialects.postgresql.base as pg

    from mnist_tiny.errors import UserError
    from mnist_tiny.tuning import search

    check, checks = pg.PGDialect.has_multi_table, []

    def stalled(self, *args, **kwargs):
        found = check(self, *args, **kwargs)
        checks.append(found)
        time.sleep(stall)
        return found

    pg.PGDialect.has_multi_table = stalled
    start.wait()
    try:
        search.open_study(url, "together", "tiny-2k", 0)
        answers.put("opened" if checks else "opened, but the stall never ran (SQLAlchemy checks tables otherwise now)")
    except UserError as e:
        answers.put(str(e))


def test_workers_that_open_an_empty_postgresql_database_together_all_get_the_study(postgres):
    # A stalled worker checks for the tables before the quick one creates them and creates them after: without
    # the lock it met "relation studies already exists" (a CI run on a loaded machine did).
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    start, answers = fork.Barrier(3), fork.Queue()
    workers = [fork.Process(target=_open_after_a_stall, args=(postgres, stall, start, answers), daemon=True)
               for stall in (0.0, 1.5, 0.7)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [answers.get(timeout=5) for _ in workers] == ["opened"] * 3
    import optuna

    assert [s.study_name for s in optuna.study.get_all_study_summaries(storage=postgres)] == ["together"]


def test_a_worker_stuck_while_opening_holds_the_others_for_a_bounded_time(postgres, monkeypatch, tmp_path):
    import sqlalchemy

    from mnist_tiny.tuning import search

    monkeypatch.setattr(search, "LOCK_SECONDS", 1)
    monkeypatch.chdir(tmp_path)
    stuck = sqlalchemy.create_engine(postgres)
    with stuck.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({search.LOCK_KEY})")
        result = CliRunner().invoke(app, ["tune", *SMALL, "--storage", postgres, "--study-name", "waits", "--trials",
                                          "1", "--study", "st"])
    stuck.dispose()
    assert result.exit_code == 1
    assert "another process has been opening a study there for 1 s" in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_two_workers_share_one_postgresql_study_and_a_killed_one_leaves_it_usable(tmp_path, postgres, mnist):
    command = [SCRIPT, "tune", *SMALL, "--storage", postgres, "--study-name", "shared", "--trials", "3",
               "--study", str(tmp_path / "here")]
    workers = [subprocess.Popen(command + ["--json"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outs]
    counts = [len(json.loads(out)["trials"]) for out, _ in outs]
    final = json.loads(subprocess.run([SCRIPT, "tune", *SMALL, "--storage", postgres, "--study-name", "shared",
                                       "--trials", "1", "--study", str(tmp_path / "here"), "--json"],
                                      capture_output=True, text=True, timeout=300).stdout)["trials"]
    numbers = [t["number"] for t in final]
    assert len(numbers) == 7 and sorted(numbers) == list(range(7)), numbers  # none lost, none twice
    assert len({t["run"] for t in final}) == 7  # each trial its own run folder
    assert max(counts) >= 6  # the second to finish saw both workers' trials
    # A worker killed mid-trial: its trial is failed once its heartbeat stops; the study goes on.
    slow = [SCRIPT, "tune", "--model", "tiny-2k", "--epochs", "3", "--set", "val_size=1000", "--set", "batch_size=16",
            "--storage", postgres, "--study-name", "shared", "--trials", "1", "--study", str(tmp_path / "here")]
    victim = subprocess.Popen(slow, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    import optuna

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until its trial runs (an epoch of batch 16 lasts well over a minute)
        study = optuna.load_study(study_name="shared", storage=postgres)
        if any(t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials(deepcopy=False)):
            break
        time.sleep(0.5)
    time.sleep(2)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    import sqlalchemy

    from mnist_tiny.tuning import search

    # Its last beat made older than the grace period, as if that long had passed (instead of waiting it out).
    engine = sqlalchemy.create_engine(postgres)
    with engine.begin() as connection:
        aged = connection.execute(sqlalchemy.text(
            "UPDATE trial_heartbeats SET heartbeat = heartbeat - make_interval(secs => :s)"),
            {"s": search.GRACE_SECONDS + 2}).rowcount
    engine.dispose()
    assert aged >= 1  # the killed trial's (finished trials may keep theirs)
    after = subprocess.run([SCRIPT, "tune", *SMALL, "--storage", postgres, "--study-name", "shared", "--trials", "1",
                            "--study", str(tmp_path / "here"), "--json"], capture_output=True, text=True, timeout=300)
    assert after.returncode == 0, after.stderr[-2000:]
    states = [t["state"] for t in json.loads(after.stdout)["trials"]]
    assert len(states) == 9 and states.count("fail") == 1 and "running" not in states, states
