"""`torchrun -m mnist_tiny train`: DistributedDataParallel on CPU (gloo) with two real processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from typer.testing import CliRunner

from mnist_tiny.data.augment import random_affine
from mnist_tiny.parallel.policy import usable_cores
from mnist_tiny.training.checkpoint import read_checkpoint
from mnist_tiny.cli.app import app
from mnist_tiny.parallel.distributed import World

RUN_FILES = {"best.pt", "last.pt", "metrics.jsonl", "settings.json", "summary.json", "curves.png"}


def test_shards_split_each_batch_and_augmentation_does_not_depend_on_the_split():
    for batch, size in [(64, 2), (10, 3), (7, 7), (100, 4)]:
        bounds = [World(rank, size).shard(batch) for rank in range(size)]
        assert bounds[0][0] == 0 and bounds[-1][1] == batch
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1

    images = torch.rand(10, 1, 28, 28)
    whole = random_affine(images, 7, 0.06, 0.06, torch.Generator().manual_seed(4))
    parts = []
    for rank in range(3):
        start, stop = World(rank, 3).shard(10)
        parts.append(random_affine(images[start:stop], 7, 0.06, 0.06, torch.Generator().manual_seed(4), (start, 10)))
    torch.testing.assert_close(torch.cat(parts), whole)


def _torchrun(*args):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "mnist_tiny", *args]


def _ctrl_c_in_epoch_2(command: list[str], env: dict[str, str], run_dir) -> tuple[subprocess.Popen, str]:
    """Start a 2-epoch training command in its own session, SIGINT the whole group once epoch 1 is written."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 180
    while not metrics.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process, err


def test_torchrun_two_processes_write_one_run_and_resume_exactly(tmp_path, mnist):
    """Ctrl-C a 2-process run inside epoch 2, resume it with torchrun, and match an uninterrupted 2-process run."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    recipe = ["--model", "s6-compact", "--epochs", "2", "--subset", "6000", "--val-size", "500", "--seed", "5",
              "--batch-size", "100"]

    # A terminal's Ctrl-C reaches the whole process group: launcher and workers.
    process, err = _ctrl_c_in_epoch_2(_torchrun("train", *recipe, "--out", str(tmp_path / "cut")), env,
                                      tmp_path / "cut")
    metrics = tmp_path / "cut" / "metrics.jsonl"
    assert process.returncode != 0
    assert err.count("interrupted; saved") == 1, err  # rank 0 speaks, rank 1 stays quiet
    assert "torchrun --nproc-per-node 2 -m mnist_tiny train --resume" in err
    state = read_checkpoint(tmp_path / "cut" / "last.pt")["resume"]
    assert state["epoch"] == 1 and 0 < state["batch"], "the interrupt should land inside epoch 2"
    assert len(state["rng_per_rank"]) == 2

    resumed = subprocess.run(_torchrun("train", "--resume", str(tmp_path / "cut" / "last.pt"), "--json"),
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    whole = subprocess.run(_torchrun("train", *recipe, "--out", str(tmp_path / "whole"), "--json"),
                           capture_output=True, text=True, env=env, timeout=300)
    assert whole.returncode == 0, whole.stderr
    a, b = json.loads(resumed.stdout), json.loads(whole.stdout)  # one JSON document: only rank 0 prints
    assert b["processes"] == 2 and b["last_test_acc"] > 0.9
    for key in ("best_val_acc", "best_test_acc", "last_test_acc", "best_epoch"):
        assert a[key] == b[key], key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]

    # The same run directory as one process would write, written once.
    single = CliRunner().invoke(app, ["train", *recipe, "--out", str(tmp_path / "single"), "--json"])
    assert single.exit_code == 0, single.output
    assert {p.name for p in (tmp_path / "whole").iterdir()} == RUN_FILES == {p.name for p in (tmp_path / "single").iterdir()}
    assert metrics.read_text().count("\n") == 2 and (tmp_path / "whole" / "metrics.jsonl").read_text().count("\n") == 2
    assert abs(json.loads(single.stdout)["last_test_acc"] - b["last_test_acc"]) < 0.03


def test_auto_processes_one_per_core_when_the_batch_splits():
    from mnist_tiny.parallel.policy import auto_processes

    assert auto_processes(batch_size=128, cores=2) == 2
    assert auto_processes(batch_size=512, cores=8) == 8
    assert auto_processes(batch_size=256, cores=8) == 8  # shards keep >= 32 images
    assert auto_processes(batch_size=128, cores=8) == 4
    assert auto_processes(batch_size=64, cores=2) == 2  # the default batch, a user's model without a recipe
    assert auto_processes(batch_size=32, cores=2) == 1  # too small a batch to split
    assert auto_processes(batch_size=256, cores=1) == 1


def test_planned_processes_respects_the_settings():
    from mnist_tiny.errors import UserError
    from mnist_tiny.settings import Settings
    from mnist_tiny.parallel.policy import planned_processes

    cpu = torch.device("cpu")
    assert planned_processes(Settings(processes=3), cpu) == 3
    assert planned_processes(Settings(threads=1), cpu) == 1  # a thread budget means: one process, that many threads
    assert planned_processes(Settings(batch_size=128, subset=1000), cpu) == min(2, usable_cores())  # short runs too
    assert planned_processes(Settings(), torch.device("cuda")) == 1
    try:
        planned_processes(Settings(processes=2), torch.device("cuda"))
    except UserError as e:
        assert "torchrun" in str(e)
    else:
        raise AssertionError("processes=2 on a GPU must be refused")


def _failing_helper(world):
    raise RuntimeError(f"rank {world.rank} cannot go on")


def test_a_helper_that_fails_is_one_clear_error():
    from mnist_tiny.parallel.distributed import local_processes
    from mnist_tiny.errors import UserError

    try:
        with local_processes(2, 1, _failing_helper):
            torch.distributed.barrier()  # waits for a helper that is gone
            raise AssertionError("the barrier must fail without its helper")
    except UserError as e:
        assert "helper process 1 of 2 exited with code 1" in str(e) and "rank 1 cannot go on" in str(e), str(e)
    assert not torch.distributed.is_initialized()


def test_plain_train_with_helper_processes_interrupts_and_resumes_exactly(tmp_path, mnist):
    """`mnist-tiny train` starting its own helper (processes=2): Ctrl-C in epoch 2, plain --resume, same numbers."""
    script = str(Path(sys.executable).parent / "mnist-tiny")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MNIST_TINY_PROCESSES": "2"}
    recipe = ["--model", "s6-compact", "--epochs", "2", "--subset", "6000", "--val-size", "500", "--seed", "5",
              "--batch-size", "100"]
    # A terminal's Ctrl-C: the command and its helper.
    process, err = _ctrl_c_in_epoch_2([script, "train", *recipe, "--out", str(tmp_path / "cut")], env,
                                      tmp_path / "cut")
    assert process.returncode == 130, err
    assert err.count("interrupted; saved") == 1 and "Continue with: mnist-tiny train --resume" in err, err
    assert "Traceback" not in err
    state = read_checkpoint(tmp_path / "cut" / "last.pt")["resume"]
    assert state["epoch"] == 1 and 0 < state["batch"], "the interrupt should land inside epoch 2"
    assert len(state["rng_per_rank"]) == 2

    # The printed command, exactly: no processes setting, so the resume must use the two the run recorded.
    plain = {k: v for k, v in env.items() if k != "MNIST_TINY_PROCESSES"}
    resumed = subprocess.run([script, "train", "--resume", str(tmp_path / "cut" / "last.pt"), "--json"],
                             capture_output=True, text=True, env=plain, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    whole = subprocess.run([script, "train", *recipe, "--out", str(tmp_path / "whole"), "--json"],
                           capture_output=True, text=True, env=env, timeout=300)
    assert whole.returncode == 0, whole.stderr
    a, b = json.loads(resumed.stdout), json.loads(whole.stdout)
    assert a["processes"] == b["processes"] == 2 and b["last_test_acc"] > 0.9
    for key in ("best_val_acc", "best_test_acc", "last_test_acc", "best_epoch"):
        assert a[key] == b[key], key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert {p.name for p in (tmp_path / "whole").iterdir()} == RUN_FILES


def _sum_twice(world, values):
    world.shared.sum_(values[world.rank].clone())
    world.shared.sum_(values[world.rank].clone() * 2)


def _exit_at_once(world):
    os._exit(3)


def test_forked_helpers_sum_through_shared_memory_bit_identically_and_a_lost_helper_is_one_clear_error():
    from mnist_tiny.parallel.distributed import local_processes
    from mnist_tiny.errors import UserError

    values = torch.randn(3, 5000)
    with local_processes(3, 1, _sum_twice, values) as world:
        first = world.shared.sum_(values[0].clone())
        second = world.shared.sum_(values[0].clone() * 2)
    assert torch.equal(first, values.sum(0))  # every rank adds up the same slots the same way
    assert torch.allclose(second, 2 * values.sum(0))

    try:
        with local_processes(2, 1, _exit_at_once) as world:
            world.shared.sum_(torch.ones(10))  # waits for a helper that is gone
            raise AssertionError("the sum must fail without its helper")
    except UserError as e:
        assert "helper process 1 of 2 exited with code 3" in str(e), str(e)
