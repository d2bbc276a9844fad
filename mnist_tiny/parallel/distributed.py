"""Data parallelism: several processes, each training on a shard of every batch.

Two ways in. `torchrun` sets RANK, WORLD_SIZE and LOCAL_RANK (one process per GPU, or per share of the CPU cores).
A plain `mnist-tiny train` on the CPU starts its own helpers (`local_processes`) when the batch is big enough to
split: torch's intra-op threading gains little on layers this small, while one one-thread process per core keeps
every core busy (figures in README, "Several processes"). For a world of one everything here is a no-op.

Gradients are averaged by DistributedDataParallel under torchrun and by `GradientAverage` in forked helpers (see
`data_parallel`); this module adds the few other
collectives the loop needs: summing metrics, agreeing on a stop request, and letting rank 0 alone touch the
file system while the others wait for its verdict (so an error on rank 0 is an error everywhere, not a hang).
"""

from __future__ import annotations

import atexit
import mmap
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

from mnist_tiny.errors import UserError
from mnist_tiny.parallel.policy import can_fork, usable_cores

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    forked: bool = False  # helpers of `local_processes`, not a torchrun launch
    shared: SharedSum | None = field(default=None, compare=False, repr=False)  # forked: their shared memory

    @property
    def enabled(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: int) -> tuple[int, int]:
        """(start, stop) of this process's rows in a global batch: contiguous, sizes differing by at most one."""
        base, extra = divmod(batch, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"environment variable {name}={raw!r} is not an integer (set by torchrun)", 2) from None


def world_from_env() -> World:
    """The process's place in a torchrun launch (rank 0 of 1 when not launched by torchrun)."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if size < 1 or not 0 <= rank < size:
        raise UserError(f"RANK={rank} and WORLD_SIZE={size} do not describe a process group", 2)
    return World(rank, size, _env_int("LOCAL_RANK", rank))


def setup(world: World, device: torch.device) -> torch.device:
    """Join the process group (gloo on CPU, nccl on CUDA); return the device this process trains on."""
    if not world.enabled:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # A deadline for joining (and for any one collective): a process that never arrives is an error, not a hang.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=timedelta(seconds=TORCHRUN_TIMEOUT_SECONDS))
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    if dist.get_world_size() != world.size:
        raise UserError(f"WORLD_SIZE={world.size} but the process group has {dist.get_world_size()} processes", 2)
    return device


def data_parallel(model: torch.nn.Module, world: World, device: torch.device,
                  gradient_buffer: Callable[[], torch.Tensor | None] | None = None):
    """(module to call, step to run between backward and the optimizer) for training `model` in `world`.

    Under torchrun: DistributedDataParallel. In forked CPU helpers: `GradientAverage`, because DDP's constructor
    imports torch._dynamo (seconds: as long as a whole epoch of a small subset) and its bucketing has nothing to
    overlap on a model of a few thousand parameters. `gradient_buffer` (the optimizer's, when it keeps
    every gradient in one flat buffer: `fast.sgd.SGD.gradient_buffer`) lets the average sum that buffer in place.
    """
    if not world.enabled:
        return model, None
    if world.forked:
        return model, GradientAverage(model, world, gradient_buffer)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    return ddp, None


class GradientAverage:
    """After each backward, one all-reduce of all gradients packed into one buffer, divided by the world size.

    The sum goes through the memory forked helpers share (`SharedSum`), or gloo if the gradients do not fit there.
    Construction makes every process start from rank 0's weights and buffers, as DDP's does.
    """

    def __init__(self, model: torch.nn.Module, world: World,
                 gradient_buffer: Callable[[], torch.Tensor | None] | None = None):
        self.world, self.gradient_buffer = world, gradient_buffer
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._values = sum(p.numel() for p in self.params)
        with torch.no_grad():
            for t in [*model.parameters(), *model.buffers()]:
                dist.broadcast(t.data, src=0)

    def __call__(self) -> None:
        flat = self.gradient_buffer() if self.gradient_buffer is not None else None
        if flat is None or flat.numel() != self._values:  # no flat buffer (AdamW): pack the gradients and back
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
            flat = torch.cat([g.reshape(-1) for g in grads])
            self._sum(flat)
            offset = 0
            for p, g in zip(self.params, grads):
                p.grad = g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()
        else:
            self._sum(flat)

    def _sum(self, flat: torch.Tensor) -> None:
        shared = self.world.shared
        if shared is not None and shared.fits(flat):
            shared.sum_(flat)
        else:
            dist.all_reduce(flat)
        flat.div_(self.world.size)


class SharedSum:
    """An all-reduce (sum) for processes forked from one parent, through memory they all map.

    gloo's all-reduce goes through loopback TCP, several times slower per step for gradients this small
    (docs/performance.md, "Gradients summed through shared memory").

    Each rank copies its values into its own slot and posts how many sums it has entered; once every rank has
    posted this one, each adds up all the slots in the same way, so every rank gets bit-identical sums (as the
    model replicas must). Slots alternate between two buffers: a rank can run at most one sum ahead of the
    slowest, so it never writes a buffer still being read. The posts are read and written under a lock, whose
    acquire and release order the slots' memory between processes on any CPU. A rank that waits checks every
    half second that the others are still alive (it cannot hang on a process that died).
    """

    CAPACITY = 1 << 16  # float32 values per rank and buffer: far more than the gradients of a tiny model

    def __init__(self, size: int):
        self.size, self.rank, self.entered = size, 0, 0
        values = 2 * size * self.CAPACITY * 4
        self._memory = mmap.mmap(-1, values + 16 * size)  # anonymous and shared: forked children map it too
        self._slots = torch.frombuffer(self._memory, dtype=torch.float32, count=values // 4).view(2, size, -1)
        self._posted = memoryview(self._memory)[values:values + 8 * size].cast("q")
        self._pids = memoryview(self._memory)[values + 8 * size:].cast("q")
        self._lock = multiprocessing.get_context("fork").Lock()

    def join(self, rank: int) -> None:
        """Called by each process, after the fork, before its first sum."""
        self.rank = rank
        self._pids[rank] = os.getpid()

    def fits(self, values: torch.Tensor) -> bool:
        return values.dtype == torch.float32 and values.device.type == "cpu" and values.numel() <= self.CAPACITY

    def sum_(self, values: torch.Tensor) -> torch.Tensor:
        """Replace `values` (1-d, float32, CPU) by its sum over all ranks; every rank must call this in turn."""
        self.entered += 1
        n, slots = values.numel(), self._slots[self.entered % 2]
        slots[self.rank, :n].copy_(values)
        with self._lock:
            self._posted[self.rank] = self.entered
        self._wait_for_all()
        return torch.sum(slots[:, :n], 0, out=values)

    def _wait_for_all(self) -> None:
        check_at = time.monotonic() + 0.5
        while True:
            with self._lock:
                if min(self._posted) >= self.entered:
                    return
            os.sched_yield()  # the others have cores of their own; give way only to what else wants this one
            if time.monotonic() > check_at:
                for rank, pid in enumerate(self._pids):
                    if rank != self.rank and not _alive(pid):
                        raise RuntimeError(f"rank {rank} (pid {pid}) exited while the others waited for it")
                check_at = time.monotonic() + 0.5


def _alive(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie waiting to be reaped has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X", "x")


def on_main(world: World, action: Callable[[], T]) -> T | None:
    """Run `action` on rank 0 only; the others wait for it and raise the same UserError if it raised one."""
    if not world.enabled:
        return action()
    result, failure = None, None
    if world.is_main:
        try:
            result = action()
        except UserError as e:
            failure = (str(e), e.exit_code)
        except BaseException as e:  # tell the others before going down, or they wait forever
            failure = (f"rank 0 failed: {type(e).__name__}: {e}", 1)
            broadcast(world, failure)
            raise
    failure = broadcast(world, failure)
    if failure is not None:
        raise UserError(*failure)
    return result


def broadcast(world: World, obj: Any) -> Any:
    """Rank 0's `obj`, on every rank."""
    if not world.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(world: World, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not world.enabled:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def sum_(world: World, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of `values` over all ranks."""
    if not world.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def any_(world: World, flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on any (a Ctrl-C seen by one process stops all at the same batch)."""
    if not world.enabled:
        return flag
    if world.shared is not None:
        return bool(world.shared.sum_(torch.tensor([float(flag)])).item())
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def leave() -> None:
    """Leave the process group (if any) while the interpreter is still whole: a gloo group left to interpreter
    shutdown can abort the process ("terminate called without an active exception")."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.enabled:
        dist.barrier()


@contextmanager
def solo_threads(world: World) -> Iterator[None]:
    """Rank 0 working alone while the others wait in a collective (evaluation, files): let it use every core."""
    before = torch.get_num_threads()
    if not world.enabled or before >= usable_cores():
        yield
        return
    torch.set_num_threads(usable_cores())
    try:
        yield
    finally:
        torch.set_num_threads(before)


STARTUP_SECONDS = 120
TORCHRUN_TIMEOUT_SECONDS = 600


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else "no output"


def _die_with_parent() -> None:
    """A helper must not outlive rank 0, even one killed with SIGKILL (Linux: the kernel sends it SIGKILL too)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _helper_process(rank: int, size: int, threads: int, port: int, shared: SharedSum, log: str,
                    target: Callable[..., Any], args: tuple) -> None:
    """Body of a forked helper: quiet except for its log, joins the group as `rank`, runs `target(world, *args)`."""
    _die_with_parent()
    sys.stderr = open(log, "w", buffering=1)  # and fd 2 too, for what torch's C++ side writes
    os.dup2(sys.stderr.fileno(), 2)
    sys.stdout = open(os.devnull, "w")
    os.dup2(sys.stdout.fileno(), 1)
    torch.set_num_threads(threads)
    shared.join(rank)
    store = dist.TCPStore("127.0.0.1", port, size, is_master=False, timeout=timedelta(seconds=STARTUP_SECONDS))
    store.set(f"ready/{rank}", "1")
    dist.init_process_group("gloo", store=store, rank=rank, world_size=size)
    try:
        target(World(rank, size, rank, forked=True, shared=shared), *args)
    except UserError as e:  # the parent quotes the last line of the log
        print(e, file=sys.stderr)
        sys.exit(e.exit_code)
    finally:
        dist.destroy_process_group()


@contextmanager
def local_processes(size: int, threads: int, target: Callable[..., Any], *args: Any) -> Iterator[World]:
    """Make this process rank 0 of `size` on the CPU; ranks 1.. are forked helpers running `target(world, *args)`.

    The helpers stay in the terminal's process group (a Ctrl-C reaches them too, as under torchrun) but write
    nothing to it: their stderr goes to a log whose last line is quoted if one fails.
    """
    if not can_fork():
        raise UserError(f"processes={size} needs Linux (forked helpers); use processes=1, "
                        "or torchrun --nproc-per-node N", 2)
    store = dist.TCPStore("127.0.0.1", 0, size, is_master=True, wait_for_workers=False,
                          timeout=timedelta(seconds=STARTUP_SECONDS))
    logs = Path(tempfile.mkdtemp(prefix="mnist-tiny-helpers-"))
    shared = SharedSum(size)
    shared.join(0)
    fork = multiprocessing.get_context("fork")
    helpers: list[tuple[int, Any]] = []

    def failure(rank: int, p) -> UserError:
        return UserError(f"helper process {rank} of {size} exited with code {p.exitcode}: "
                         f"{_last_line(logs / f'rank-{rank}.log')}")

    threads_before = torch.get_num_threads()
    finished = False
    try:
        for rank in range(1, size):
            p = fork.Process(target=_helper_process, daemon=True, name=f"mnist-tiny rank {rank}",
                             args=(rank, size, threads, store.port, shared, str(logs / f"rank-{rank}.log"), target,
                                   args))
            p.start()
            helpers.append((rank, p))
        torch.set_num_threads(threads)
        # Wait for every helper to check in, so one that cannot start is an error now, not a hang in a collective.
        deadline = time.monotonic() + STARTUP_SECONDS
        while not store.check([f"ready/{rank}" for rank, _ in helpers]):
            for rank, p in helpers:
                if p.exitcode is not None:
                    raise failure(rank, p)
            if time.monotonic() > deadline:
                raise UserError(f"helper processes did not start within {STARTUP_SECONDS} s")
            time.sleep(0.005)
        dist.init_process_group("gloo", store=store, rank=0, world_size=size)
        yield World(0, size, 0, forked=True, shared=shared)
        finished = True
    except RuntimeError as e:
        # A helper that died makes the next collective fail here (gloo raises a RuntimeError): name the helper and
        # its last words. Anything else (a UserError, an interrupt) is rank 0's own and passes through as it is.
        for rank, p in helpers:
            p.join(timeout=1)
            if p.exitcode not in (None, 0):
                raise failure(rank, p) from e
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for _, p in helpers:  # after a clean finish they are exiting already; otherwise they must not linger
            p.join(timeout=30 if finished else 5)
            if p.exitcode is None:
                p.kill()
                p.join()
        torch.set_num_threads(threads_before)
        shutil.rmtree(logs, ignore_errors=True)
