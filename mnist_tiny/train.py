"""The training loop: tensors in, metrics out.

MNIST sits in memory as uint8; every batch is indexed, converted and augmented on the training device with
tensor ops. The learning rate is a pure function of the step, so resuming needs only the step count. A stop
request (SIGINT/SIGTERM) is honoured between batches: `last.pt` then records the exact position inside the
epoch, and `--resume` replays the same data order, augmentation and dropout draws from there.

With several processes (`torchrun`, or helpers forked on a multi-core CPU) every process walks the same batch
order and trains on its own rows of each batch (gradients averaged: see `distributed.data_parallel`); metrics are
summed across processes and only rank 0 writes files or reports progress.
"""

from __future__ import annotations

import copy
import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F

from .augment import random_affine, to_float
from .checkpoint import FORMAT, read_checkpoint, save_atomic, versions
from .data import load_mnist, train_val_split
from .device import inference_copy, prepare_model, resolve_device
from .distributed import (World, any_, auto_processes, barrier, broadcast, can_fork, data_parallel, gather,
                          local_processes, on_main, setup, solo_threads, sum_, threads_per_process, usable_cores,
                          world_from_env)
from .errors import UserError
from .evaluate import loss_and_accuracy
from .optim import make_optimizer
from .modelref import build, resolve
from .registry import count_params
from .settings import Settings


class Reporter(Protocol):
    def start(self, info: dict[str, Any]) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, batches: int, done: int) -> None: ...
    def batch(self, done: int, loss: float, images_per_s: float) -> None: ...
    def epoch_end(self, row: dict[str, Any]) -> None: ...


class TrainingInterrupted(Exception):
    def __init__(self, checkpoint: Path, signum: int):
        super().__init__(f"interrupted by signal {signum}; state saved to {checkpoint}")
        self.checkpoint, self.signum = checkpoint, signum


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
               average: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on a uint8 batch: convert, augment on the device, forward, backward, update.

    `rows=(start, batch)` marks `images` as a shard of a global batch (see `random_affine`); `average`, if
    given, averages the gradients over the processes before the update."""
    x = random_affine(to_float(images), s.rotate, s.translate, s.scale, aug_rng, rows)
    logits = model(x)
    loss = F.cross_entropy(logits, labels, label_smoothing=s.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if average is not None:
        average()
    optimizer.step()
    return loss.detach(), logits.detach()


@contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks between batches (main thread only).

    A second signal aborts, unless it follows the first within a second: under torchrun a terminal's Ctrl-C
    reaches each worker twice (from the terminal, and forwarded by the launcher), and the workers must still get
    to save their state.
    """
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return
    first_at: list[float] = []

    def handle(signum, frame):
        if requested:
            if time.monotonic() - first_at[0] > 1.0:
                raise KeyboardInterrupt
            return
        requested.append(signum)
        first_at.append(time.monotonic())

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_name(model: str) -> str:
    """A model reference as a directory name: `fast-11k`, `mynet.py:Net` -> `mynet-Net`."""
    path, _, attr = model.rpartition(":") if ":" in model else (model, "", "")
    stem = Path(path).stem if path.endswith(".py") or "/" in path else path.rsplit(".", 1)[-1]
    name = "-".join(part for part in (stem, attr) if part)
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "model"


def default_out_dir(s: Settings) -> Path:
    return Path("runs") / f"{run_name(s.model)}-{datetime.now():%Y%m%d-%H%M%S}"


def prepare_out_dir(out: Path) -> Path:
    """A fresh run never writes into a directory that already holds a run (nothing of the user's is overwritten)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory", 2)
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out}: directory already holds files; choose a new one, or --resume {out / 'last.pt'}", 2)
    out.mkdir(parents=True, exist_ok=True)
    return out


# Settings a resume may change (where the data lives, what runs it); every other one must match the run's own.
RESUME_MAY_CHANGE = {"data_dir", "device", "threads", "processes", "download", "mirror", "out"}


def check_run_dir(out: Path, state: dict[str, Any], resume: Path, epochs: int) -> None:
    """A resumed run writes only into its own run directory: the one whose settings.json is the checkpoint's.

    A last.pt copied into another run's folder would otherwise overwrite that run's best.pt and summary."""
    recorded = state.get("settings") or {}
    path = out / "settings.json"
    try:
        if not path.is_file() or path.stat().st_size > 1_000_000:
            raise ValueError("is missing")
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError, UnicodeDecodeError) as e:
        reason = str(e) if str(e) == "is missing" else "cannot be read"
        raise UserError(f"--resume {resume}: {out} is not this run's directory (its settings.json {reason}); "
                        "resume from the last.pt inside the run's own directory", 2) from None
    differ = sorted(k for k in set(saved) | set(recorded) if k not in RESUME_MAY_CHANGE
                    and saved.get(k) != recorded.get(k))
    if differ:
        raise UserError(f"--resume {resume}: {out} holds another run (its settings.json differs in "
                        f"{', '.join(differ[:5])}); resume from the last.pt inside the run's own directory", 2)
    done = state.get("resume", {}).get("epoch", 0) >= epochs and state["resume"].get("batch", 0) == 0
    if done and (out / "summary.json").is_file():
        raise UserError(f"--resume {resume}: this run already finished its {epochs} epochs "
                        f"(its results are in {out / 'summary.json'})", 2)


def planned_processes(s: Settings, device: torch.device) -> int:
    """Processes a plain `train` uses: `s.processes`, or one per core on the CPU when that pays (see distributed)."""
    if s.processes is not None:
        if s.processes > 1 and device.type != "cpu":
            raise UserError(f"processes={s.processes} trains on the CPU; on {device.type} use one process, "
                            "or torchrun --nproc-per-node N for several GPUs", 2)
        return s.processes
    if device.type != "cpu" or s.threads or not can_fork():
        return 1
    train_images = 60_000 - s.val_size if s.subset is None else min(s.subset, 60_000 - s.val_size)
    return auto_processes(s.batch_size, s.epochs * train_images, usable_cores())


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
    splits = load_mnist(s.data_dir, s.download, s.mirror)  # before the fork: any download happens once
    with local_processes(processes, threads_per_process(s.threads, processes), _helper, s, resume, device,
                         splits) as world:
        return _train(s, reporter, resume, world, device, splits)


def _helper(world: World, s: Settings, resume: Path | None, device: torch.device, splits: dict) -> None:
    """A forked helper's part of `train` (ranks 1..): rank 0 writes the files and talks to the user."""
    try:
        _train(s, None, resume, world, device, splits)
    except TrainingInterrupted:
        pass


def _train(s: Settings, reporter: Reporter | None, resume: Path | None, world, device: torch.device,
           splits: dict | None = None) -> dict[str, Any]:
    state = read_checkpoint(resume) if resume else None
    if state is not None and "resume" not in state:
        raise UserError(f"checkpoint {resume}: holds no training state to resume from (use a run's last.pt)", 2)
    if splits is None:  # under torchrun: rank 0 downloads if needed; the others read the files it left
        splits = on_main(world, lambda: load_mnist(s.data_dir, s.download, s.mirror)) or load_mnist(s.data_dir, False)
    train_split, val_split = train_val_split(splits["train"], s.val_size, s.seed, s.subset)
    n = len(train_split)
    batches_per_epoch = math.ceil(n / s.batch_size)
    if world.enabled and min(s.batch_size, n - (batches_per_epoch - 1) * s.batch_size) < world.size:
        raise UserError(f"batch_size {s.batch_size} with {n} training images leaves a batch smaller than the "
                        f"{world.size} processes; choose another batch_size or subset", 2)
    if resume:
        out = Path(resume).parent
        check_run_dir(out, state, resume, s.epochs)
    else:
        def make_run_dir() -> Path:
            path = prepare_out_dir(Path(s.out) if s.out else default_out_dir(s))
            (path / "settings.json").write_text(s.model_dump_json(indent=2) + "\n")
            return path
        out = broadcast(world, on_main(world, make_run_dir))
    test_split = splits["test"]
    # Whole dataset on the device once: batches are index operations, never Python loops over images.
    train_x, train_y = train_split.images.to(device), train_split.labels.to(device)

    source = resolve(s.model)
    scaling = source.default_scaling if s.input_scaling == "auto" else s.input_scaling
    torch.manual_seed(s.seed)
    model = prepare_model(build(source, scaling), device, training=True)
    net, average = data_parallel(model, world, device)
    if world.enabled:
        torch.manual_seed(s.seed + 7919 * world.rank)  # same initial weights everywhere, different dropout masks
    optimizer = make_optimizer(model, s)
    ema = EMA(model, s.ema) if s.ema > 0 else None
    # Identical in every process: all walk the same batch order and draw the same augmentation parameters.
    order_rng = torch.Generator().manual_seed(s.seed)
    aug_rng = torch.Generator(device=device).manual_seed(s.seed + 1)
    total_steps = s.epochs * batches_per_epoch

    history: list[dict[str, Any]] = []
    start_epoch, start_batch, best = 0, 0, {"val_acc": -1.0, "epoch": 0}
    running = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
    if state is not None:
        r = state["resume"]
        try:
            model.load_state_dict(state["train_state_dict"])
        except RuntimeError as e:
            raise UserError(f"checkpoint {resume}: weights do not fit model {s.model} "
                            f"({' '.join(str(e).split())[:200]})", 2) from None
        optimizer.load_state_dict(r["optimizer"])
        if ema is not None:
            ema.model.load_state_dict(r["ema"])
        order_rng.set_state(r["epoch_order_rng"])
        aug_rng.set_state(r["aug_rng"])
        # Checkpoints written before torchrun support hold one process's state as torch_rng/cuda_rng.
        per_rank = r.get("rng_per_rank") or [{"torch": r["torch_rng"], "cuda": r.get("cuda_rng")}]
        if world.rank < len(per_rank):
            torch.set_rng_state(per_rank[world.rank]["torch"])
            if device.type == "cuda" and per_rank[world.rank]["cuda"] is not None:
                torch.cuda.set_rng_state(per_rank[world.rank]["cuda"])
        start_epoch, start_batch, history, best, running = r["epoch"], r["batch"], r["history"], r["best"], r["running"]
        if not world.is_main:  # rank 0 carries the epoch's totals so far; the sum at epoch end adds the rest
            running = {**running, "loss": 0.0, "correct": 0, "seen": 0}

    eval_model = ema.model if ema else model
    info = {"model": s.model, "params": count_params(model), "device": str(device), "processes": world.size, "train": n,
            "val": len(val_split), "test": len(test_split), "batches": batches_per_epoch, "out": str(out),
            "resumed_at": f"epoch {start_epoch + 1}, batch {start_batch}" if state is not None else None,
            "settings": s.model_dump(mode="json")}
    if not world.is_main:
        reporter = None
    if reporter:
        reporter.start(info)

    def rng_states() -> list[dict[str, Any]]:  # collective: every rank's dropout RNG, for an exact resume
        return gather(world, {"torch": torch.get_rng_state(),
                              "cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None})

    def epoch_totals() -> list[float]:  # collective: this epoch's loss sum, correct and seen over all ranks
        return sum_(world, [running["loss"], running["correct"], running["seen"]], device)

    def interrupted() -> TrainingInterrupted:
        # A rank that saw no signal itself stops because another did (torchrun passes SIGTERM on).
        return TrainingInterrupted(out / "last.pt", stop_requested[0] if stop_requested else signal.SIGTERM)

    def checkpoint(kind: str, epoch: int, batch: int, epoch_rng: torch.Tensor, rngs=None) -> dict[str, Any]:
        ckpt = {"format": FORMAT, "model": s.model, "source": source.record(), "input_scaling": scaling,
                "state_dict": eval_model.state_dict(),
                "settings": s.model_dump(mode="json"), "metrics": history[-1] if history else {},
                "versions": versions(), "kind": kind}
        if kind == "last":
            ckpt["train_state_dict"] = model.state_dict()
            ckpt["resume"] = {
                "epoch": epoch, "batch": batch, "optimizer": optimizer.state_dict(),
                "ema": ema.model.state_dict() if ema else None, "epoch_order_rng": epoch_rng,
                "aug_rng": aug_rng.get_state(), "rng_per_rank": rngs,
                "history": history, "best": best, "running": running,
            }
        return ckpt

    with stop_on_signals() as stop_requested:
        for epoch in range(start_epoch, s.epochs):
            epoch_rng = order_rng.get_state()
            order = torch.randperm(n, generator=order_rng).to(device)
            first = start_batch if epoch == start_epoch else 0
            if first == 0:
                running = {"loss": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
            if reporter:
                reporter.epoch_start(epoch + 1, s.epochs, batches_per_epoch, first)
            model.train()
            tick = time.perf_counter()
            for i, idx in enumerate(order.split(s.batch_size)):
                if i < first:
                    continue
                step = epoch * batches_per_epoch + i
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, total_steps, s)
                start, stop = world.shard(len(idx))
                mine = idx[start:stop]
                y = train_y[mine]
                loss, logits = train_step(net, optimizer, train_x[mine], y, s, aug_rng,
                                          (start, len(idx)) if world.enabled else None, average)
                if ema:
                    ema.update(model)
                running["loss"] += loss.item() * len(y)
                running["correct"] += int((logits.argmax(1) == y).sum())
                running["seen"] += len(y)
                if reporter:
                    elapsed = running["seconds"] + time.perf_counter() - tick
                    reporter.batch(i + 1, running["loss"] / running["seen"],
                                   world.size * running["seen"] / max(elapsed, 1e-9))
                if any_(world, bool(stop_requested), device) and i + 1 < batches_per_epoch:
                    running["seconds"] += time.perf_counter() - tick
                    running.update(zip(("loss", "correct", "seen"), epoch_totals()))
                    rngs = rng_states()
                    if world.is_main:
                        save_atomic(checkpoint("last", epoch, i + 1, epoch_rng, rngs), out / "last.pt")
                    raise interrupted()
            running["seconds"] += time.perf_counter() - tick
            loss_sum, correct, seen = epoch_totals()

            rngs = rng_states()
            if world.is_main:
                with solo_threads(world):
                    val_loss, val_acc = loss_and_accuracy(inference_copy(eval_model, device), val_split.images,
                                                          val_split.labels, device, s.eval_batch_size)
                row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                       "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                       "seconds": running["seconds"]}
                history.append(row)
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                # Checkpoints are picked on validation accuracy only; ties go to the later (longer-trained) epoch.
                if val_acc >= best["val_acc"]:
                    best = {"val_acc": val_acc, "epoch": epoch + 1}
                    save_atomic(checkpoint("best", epoch + 1, 0, epoch_rng), out / "best.pt")
                save_atomic(checkpoint("last", epoch + 1, 0, order_rng.get_state(), rngs), out / "last.pt")
                if reporter:
                    reporter.epoch_end(row)
            if any_(world, bool(stop_requested), device):
                raise interrupted()

    def finish_alone() -> dict[str, Any]:
        with solo_threads(world):
            return finish(out, s, test_split, device, history, best, count_params(model), world.size)

    summary = on_main(world, finish_alone)
    return broadcast(world, summary)


def finish(out: Path, s: Settings, test_split, device, history, best, params: int,
           processes: int = 1) -> dict[str, Any]:
    """Score the best and the last checkpoint on the test set (reported, never used to choose) and draw curves."""
    from .checkpoint import load_checkpoint
    from .plots import training_curves

    results = {}
    for kind in ("best", "last"):
        if kind == "last" and best["epoch"] == len(history):  # the same weights: score them once
            results["last"] = results["best"]
            continue
        model = prepare_model(load_checkpoint(out / f"{kind}.pt", s.model).model, device)
        loss, acc = loss_and_accuracy(model, test_split.images, test_split.labels, device, s.eval_batch_size)
        results[kind] = {"test_loss": loss, "test_acc": acc}
    summary = {
        "model": s.model, "params": params, "epochs": s.epochs, "seed": s.seed, "processes": processes,
        "out": str(out),
        "best_epoch": best["epoch"], "best_val_acc": best["val_acc"],
        "best_test_acc": results["best"]["test_acc"], "last_test_acc": results["last"]["test_acc"],
        "last_val_acc": history[-1]["val_acc"], "train_seconds": sum(r["seconds"] for r in history),
        "history": history,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    training_curves(history, out / "curves.png", title=f"{run_name(s.model)} · seed {s.seed}")
    return summary
