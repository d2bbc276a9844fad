"""`torchrun` support: one process per GPU (or per share of the CPU cores), each training on a shard of every batch.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them (a plain `mnist-tiny train`) everything here is a
no-op for a world of one. Gradients are averaged by DistributedDataParallel; this module adds the few other
collectives the loop needs: summing metrics, agreeing on a stop request, and letting rank 0 alone touch the
file system while the others wait for its verdict (so an error on rank 0 is an error everywhere, not a hang).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from .errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

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
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    if dist.get_world_size() != world.size:
        raise UserError(f"WORLD_SIZE={world.size} but the process group has {dist.get_world_size()} processes", 2)
    return device


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
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())
