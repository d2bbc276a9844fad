"""The training loop: tensors in, metrics out.

MNIST sits in memory as uint8; every batch is indexed, converted and augmented on the training device with
tensor ops. The learning rate is a pure function of the step, so resuming needs only the step count. A stop
request (SIGINT/SIGTERM) is honoured between batches: `last.pt` then records the exact position inside the
epoch, and `--resume` replays the same data order, augmentation and dropout draws from there.

With several processes (`torchrun`, or helpers forked on a multi-core CPU) every process walks the same batch
order and trains on its own rows of each batch (gradients averaged: see `parallel.distributed.data_parallel`); metrics are
summed across processes and only rank 0 writes files or reports progress.
"""

from __future__ import annotations

import copy
import math
import signal
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F

from mnist_tiny.data.augment import random_affine, to_float
from mnist_tiny.data.mnist import load_mnist, train_val_split
from mnist_tiny.device import resolve_device
from mnist_tiny.errors import UserError
from mnist_tiny.evaluation.metrics import loss_and_accuracy
from mnist_tiny.fast import inference_copy, prepare
from mnist_tiny.models.refs import build, resolve
from mnist_tiny.models.registry import count_params
from mnist_tiny.parallel.distributed import (
    World,
    any_,
    barrier,
    broadcast,
    data_parallel,
    gather,
    local_processes,
    on_main,
    setup,
    solo_threads,
    sum_,
    world_from_env,
)
from mnist_tiny.parallel.policy import planned_processes, threads_per_process
from mnist_tiny.settings import Settings
from mnist_tiny.training import distill, rundir
from mnist_tiny.training.bn_stats import recalibrated
from mnist_tiny.training.checkpoint import FORMAT, read_checkpoint, save_atomic, versions
from mnist_tiny.training.finish import finish
from mnist_tiny.training.optim import make_optimizer
from mnist_tiny.training.signals import TrainingInterrupted, stop_on_signals


class Reporter(Protocol):
    def start(self, info: dict[str, Any]) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None: ...
    def batch(self, done: int, loss: float, images_per_s: float) -> None: ...
    def epoch_end(self, row: dict[str, Any]) -> None: ...


def lr_at(step: int, total: int, s: Settings) -> float:
    """OneCycle: linear warm-up to `lr` over `warmup` of the steps, then cosine down to ~0; or plain cosine/constant."""
    if s.scheduler == "constant":
        return s.lr
    progress = step / max(1, total)
    if s.scheduler == "onecycle" and s.warmup > 0:
        if progress < s.warmup:
            return s.lr * (0.04 + 0.96 * progress / s.warmup)
        progress = (progress - s.warmup) / (1 - s.warmup)
    return s.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class EMA:
    """Exponential moving average of the weights (BatchNorm statistics are copied, not averaged)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay, self.model = decay, copy.deepcopy(model).eval()

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for avg, cur in zip(self.model.parameters(), model.parameters()):
            avg.lerp_(cur, 1 - self.decay)
        for avg, cur in zip(self.model.buffers(), model.buffers()):
            avg.copy_(cur)


def train_step(model, optimizer, images: torch.Tensor, labels: torch.Tensor, s: Settings,
               aug_rng: torch.Generator, rows: tuple[int, int] | None = None,
               average: Callable[[], None] | None = None, teacher=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a uint8 batch: convert, augment on the device, forward, backward, update.

    `rows=(start, batch)` marks `images` as a shard of a global batch (see `random_affine`); `average`, if
    given, averages the gradients over the processes before the update; `teacher` adds its soft targets."""
    x = random_affine(to_float(images), s.rotate, s.translate, s.scale, aug_rng, rows)
    logits = model(x)
    if teacher is None:
        loss = F.cross_entropy(logits, labels, label_smoothing=s.label_smoothing)
    else:
        with torch.no_grad():
            taught = teacher(x)
        loss = distill.loss(logits, labels, taught, s)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if average is not None:
        average()
    optimizer.step()
    return loss.detach(), logits.detach()


def train(s: Settings, reporter: Reporter | None = None, resume: Path | None = None) -> dict[str, Any]:
    """Train `s.model` per the settings; return the run summary (also written to `<out>/summary.json`).

    Under torchrun this process is one rank of its launch; otherwise it may fork helper processes on the CPU
    (`planned_processes`) and be their rank 0.
    """
    world = world_from_env()
    device = resolve_device(s.device)
    processes = 1 if world.enabled else planned_processes(s, device)
    if processes == 1:
        if s.threads:
            torch.set_num_threads(s.threads)
        summary = _train(s, reporter, resume, world, setup(world, device))
        barrier(world)  # under torchrun: no process leaves while another still sends
        return summary
    splits = load_mnist(s.data_dir, s.download, s.mirror, s.verify_data, s.test)  # before the fork: one download
    model_source(s)  # before the fork: a broken model is one error, not one per helper
    distill.load_teacher(s, device)  # and so is a teacher that cannot teach this run
    with local_processes(processes, threads_per_process(s.threads, processes), _helper, s, resume, device,
                         splits) as world:
        return _train(s, reporter, resume, world, device, splits)


def _helper(world: World, s: Settings, resume: Path | None, device: torch.device, splits: dict) -> None:
    """A forked helper's part of `train` (ranks 1..): rank 0 writes the files and talks to the user."""
    try:
        _train(s, None, resume, world, device, splits)
    except TrainingInterrupted:
        pass


def model_source(s: Settings):
    """(source, input scaling) of `s.model`, resolved and, for a user's model, probed (`refs.check_model`) before
    anything is written: a broken file must not leave a run directory."""
    source = resolve(s.model)
    scaling = source.default_scaling if s.input_scaling == "auto" else s.input_scaling
    return source, scaling


class Run:
    """Everything one process trains with, and what `--resume` restores: weights, optimizer, EMA, the two data
    RNGs, the position (epoch, batch), the per-epoch history, the best epoch and this epoch's running totals."""

    def __init__(self, s: Settings, world: World, device: torch.device, source, scaling: str, n: int):
        self.s, self.world, self.device, self.source, self.scaling = s, world, device, source, scaling
        torch.manual_seed(s.seed)
        self.model = prepare(build(source, scaling), device, training=True, kernels=s.fast_kernels)
        self.teacher = distill.load_teacher(s, device)
        self.optimizer = make_optimizer(self.model, s)
        self.net, self.average = data_parallel(self.model, world, device,
                                               getattr(self.optimizer, "gradient_buffer", None))
        if world.enabled:
            torch.manual_seed(s.seed + 7919 * world.rank)  # same initial weights everywhere, other dropout masks
        self.ema = EMA(self.model, s.ema) if s.ema > 0 else None
        # Identical in every process: all walk the same batch order and draw the same augmentation parameters.
        self.order_rng = torch.Generator().manual_seed(s.seed)
        self.aug_rng = torch.Generator(device=device).manual_seed(s.seed + 1)
        self.batches = math.ceil(n / s.batch_size)
        self.total_steps = s.epochs * self.batches
        self.epoch, self.batch = 0, 0
        self.history: list[dict[str, Any]] = []
        self.best = {"val_acc": -1.0, "epoch": 0}
        self.running = fresh_totals()

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.model if self.ema else self.model

    def scored_model(self, images: torch.Tensor) -> torch.nn.Module:
        """What this epoch's checkpoints hold and validation scores: the eval model, its BatchNorm statistics
        taken again on clean training `images` when `recalibrate_bn` asks (a copy: training goes on unchanged)."""
        if not self.s.recalibrate_bn:
            return self.eval_model
        with solo_threads(self.world):
            return recalibrated(self.eval_model, images, self.s.recalibrate_bn, self.s.seed, self.s.eval_batch_size)

    def restore(self, state: dict[str, Any], resume: Path) -> None:
        r = state["resume"]
        try:
            self.model.load_state_dict(state["train_state_dict"])
        except RuntimeError as e:
            raise UserError(f"checkpoint {resume}: weights do not fit model {self.s.model} "
                            f"({' '.join(str(e).split())[:200]})", 2) from None
        self.optimizer.load_state_dict(r["optimizer"])
        if self.ema is not None:
            self.ema.model.load_state_dict(r["ema"])
        self.order_rng.set_state(r["epoch_order_rng"])
        self.aug_rng.set_state(r["aug_rng"])
        # Checkpoints written before torchrun support hold one process's state as torch_rng/cuda_rng.
        per_rank = r.get("rng_per_rank") or [{"torch": r["torch_rng"], "cuda": r.get("cuda_rng")}]
        if self.world.rank < len(per_rank):
            torch.set_rng_state(per_rank[self.world.rank]["torch"])
            if self.device.type == "cuda" and per_rank[self.world.rank]["cuda"] is not None:
                torch.cuda.set_rng_state(per_rank[self.world.rank]["cuda"])
        self.epoch, self.batch, self.history, self.best = r["epoch"], r["batch"], r["history"], r["best"]
        self.running = dict(r["running"])
        if not self.world.is_main:  # rank 0 carries the epoch's totals so far; the sum at epoch end adds the rest
            self.running.update(loss=0.0, correct=0, seen=0)

    def train_epoch(self, epoch: int, order: torch.Tensor, first: int, x: torch.Tensor, y: torch.Tensor,
                    stop: list[int], reporter: Reporter | None) -> int | None:
        """Batches `first`.. of one epoch; returns the next batch's index if a stop was requested before the end."""
        s, world, running = self.s, self.world, self.running
        self.model.train()
        tick = time.perf_counter()
        for i, idx in enumerate(order.split(s.batch_size)):
            if i < first:
                continue
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(epoch * self.batches + i, self.total_steps, s)
            start, stop_row = world.shard(len(idx))
            mine = idx[start:stop_row]
            labels = y[mine]
            loss, logits = train_step(self.net, self.optimizer, x[mine], labels, s, self.aug_rng,
                                      (start, len(idx)) if world.enabled else None, self.average, self.teacher)
            if self.ema:
                self.ema.update(self.model)
            running["loss"] += loss.item() * len(labels)
            running["correct"] += int((logits.argmax(1) == labels).sum())
            running["seen"] += len(labels)
            if reporter:
                elapsed = running["seconds"] + time.perf_counter() - tick
                reporter.batch(i + 1, running["loss"] / running["seen"],
                               world.size * running["seen"] / max(elapsed, 1e-9))
            if any_(world, bool(stop), self.device) and i + 1 < self.batches:
                running["seconds"] += time.perf_counter() - tick
                return i + 1
        running["seconds"] += time.perf_counter() - tick
        return None

    def validate(self, epoch: int, totals: list[float], val_split, scored: torch.nn.Module) -> dict[str, Any]:
        loss_sum, correct, seen = totals
        with solo_threads(self.world):
            val_loss, val_acc = loss_and_accuracy(inference_copy(scored, self.device), val_split.images,
                                                  val_split.labels, self.device, self.s.eval_batch_size)
        return {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                "val_loss": val_loss, "val_acc": val_acc, "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": self.running["seconds"]}

    def checkpoint(self, kind: str, epoch: int, batch: int, epoch_rng: torch.Tensor, rngs=None,
                   scored: torch.nn.Module | None = None) -> dict[str, Any]:
        s = self.s
        ckpt = {"format": FORMAT, "model": s.model, "source": self.source.record(), "input_scaling": self.scaling,
                "state_dict": (scored or self.eval_model).state_dict(), "settings": s.model_dump(mode="json"),
                "metrics": self.history[-1] if self.history else {}, "versions": versions(), "kind": kind}
        if kind == "last":
            ckpt["train_state_dict"] = self.model.state_dict()
            ckpt["resume"] = {
                "epoch": epoch, "batch": batch, "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.model.state_dict() if self.ema else None, "epoch_order_rng": epoch_rng,
                "aug_rng": self.aug_rng.get_state(), "rng_per_rank": rngs,
                "history": self.history, "best": self.best, "running": self.running,
                # What ran it: a resume defaults to the same, or it would continue on another path and diverge.
                "processes": self.world.size, "threads": torch.get_num_threads(),
            }
        return ckpt


def fresh_totals() -> dict[str, Any]:
    return {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


def _train(s: Settings, reporter: Reporter | None, resume: Path | None, world, device: torch.device,
           splits: dict | None = None) -> dict[str, Any]:
    # 1. Everything that can be wrong is found before anything is written.
    state = read_checkpoint(resume) if resume else None
    if state is not None and "resume" not in state:
        raise UserError(f"checkpoint {resume}: holds no training state to resume from (use a run's last.pt)", 2)
    if splits is None:  # under torchrun: rank 0 downloads if needed; the others read the files it left
        splits = on_main(world, lambda: load_mnist(s.data_dir, s.download, s.mirror, s.verify_data, s.test)) \
            or load_mnist(s.data_dir, False, test=s.test)
    train_split, val_split = train_val_split(splits["train"], s.val_size, s.val_seed, s.subset)
    test_split, n = splits.get("test"), len(train_split)  # None: a search's run (settings.test false)
    if world.enabled and min(s.batch_size, n - (math.ceil(n / s.batch_size) - 1) * s.batch_size) < world.size:
        raise UserError(f"batch_size {s.batch_size} with {n} training images leaves a batch smaller than the "
                        f"{world.size} processes; choose another batch_size or subset", 2)
    source, scaling = model_source(s)
    run = Run(s, world, device, source, scaling, n)
    if state is not None:
        run.restore(state, resume)

    # 2. The run directory: created (fresh run) or reopened (resume), and locked, by rank 0 alone.
    def open_run_dir() -> tuple[Path, rundir.RunLock]:
        if resume:
            out = Path(resume).parent
            lock = rundir.reopen(out, state, resume, s.epochs)
            rundir.rewrite_metrics(out, run.history)
            return out, lock
        out = Path(s.out) if s.out else rundir.default_out_dir(s.model)
        return out, rundir.create(out, s.model_dump_json(indent=2) + "\n")

    opened = on_main(world, open_run_dir)
    out = broadcast(world, opened[0] if opened else None)
    try:
        summary = _epochs(run, out, state, reporter, train_split, val_split, test_split)
    finally:
        if opened:
            opened[1].release()
    return summary


def _epochs(run: Run, out: Path, state, reporter, train_split, val_split, test_split) -> dict[str, Any]:
    s, world, device = run.s, run.world, run.device
    reporter = reporter if world.is_main else None
    if reporter:
        resumed_at = None
        if state is not None:
            resumed_at = (f"epoch {run.epoch + 1}, batch {run.batch}" if run.epoch < s.epochs
                          else f"after its last epoch ({s.epochs}): scoring only")
        reporter.start({"model": s.model, "params": count_params(run.model), "device": str(device),
                        "processes": world.size, "train": len(train_split), "val": len(val_split),
                        "test": len(test_split) if test_split is not None else 0, "batches": run.batches, "out": str(out), "resumed_at": resumed_at,
                        "settings": s.model_dump(mode="json")})
    # Whole dataset on the device once: batches are index operations, never Python loops over images.
    x, y = train_split.images.to(device), train_split.labels.to(device)

    def rng_states() -> list[dict[str, Any]]:  # collective: every rank's dropout RNG, for an exact resume
        return gather(world, {"torch": torch.get_rng_state(),
                              "cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None})

    with stop_on_signals() as stop:
        for epoch in range(run.epoch, s.epochs):
            epoch_rng = run.order_rng.get_state()
            order = torch.randperm(len(train_split), generator=run.order_rng).to(device)
            first = run.batch if epoch == run.epoch else 0
            if first == 0:
                run.running = fresh_totals()
            if reporter:
                reporter.epoch_start(epoch + 1, s.epochs, run.batches, first)

            stopped_at = run.train_epoch(epoch, order, first, x, y, stop, reporter)
            totals = sum_(world, [run.running[k] for k in ("loss", "correct", "seen")], device)  # collective
            rngs = rng_states()
            if stopped_at is not None:  # mid-epoch: last.pt records the exact position
                run.running.update(zip(("loss", "correct", "seen"), totals))
                if world.is_main:
                    save_atomic(run.checkpoint("last", epoch, stopped_at, epoch_rng, rngs), out / "last.pt")
                raise TrainingInterrupted(out / "last.pt", stop[0] if stop else signal.SIGTERM)

            if world.is_main:
                scored = run.scored_model(x)
                row = run.validate(epoch, totals, val_split, scored)
                run.history.append(row)
                # Checkpoints are picked on validation accuracy only; ties go to the later (longer-trained) epoch.
                if row["val_acc"] >= run.best["val_acc"]:
                    run.best = {"val_acc": row["val_acc"], "epoch": epoch + 1}
                    save_atomic(run.checkpoint("best", epoch + 1, 0, epoch_rng, scored=scored), out / "best.pt")
                save_atomic(run.checkpoint("last", epoch + 1, 0, run.order_rng.get_state(), rngs, scored=scored),
                            out / "last.pt")
                rundir.append_metrics(out, row)  # after last.pt: a crash in between repeats no row on resume
                if reporter:
                    reporter.epoch_end(row)
            if any_(world, bool(stop), device):
                # A rank that saw no signal itself stops because another did (torchrun passes SIGTERM on).
                raise TrainingInterrupted(out / "last.pt", stop[0] if stop else signal.SIGTERM)

    def finish_alone() -> dict[str, Any]:
        with solo_threads(world):
            return finish(out, s, test_split, device, run.history, run.best, count_params(run.model), world.size,
                          val_split)

    return broadcast(world, on_main(world, finish_alone))


