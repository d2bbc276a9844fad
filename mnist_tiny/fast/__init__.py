"""The CPU fast path, in one place: `prepare(model, device)` is the only door every speed trick comes through.

The models stay plain torch modules that print and save like the architectures they reproduce; what runs them
faster is swapped in here, at run time, keeping torch's contract (as `data.augment.affine_grid` stands in for
torch's `affine_grid`). What each trick gains, measured, is in docs/performance.md.

- `kernels.Dropout` for `nn.Dropout` (a cheaper mask, the same distribution), and Conv2d → BatchNorm2d →
  MaxPool2d blocks with a channel count that is not a multiple of 8 run 8 channels wide (`kernels`), in every
  model, a user's too (the setting `fast_kernels = false` trains on torch's own layers instead: its dropout masks,
  its summation order). In inference they change nothing: Dropout is off and the 8-wide block's outputs are the
  plain one's bit for bit;
- channels-last or contiguous memory by the work and the thread count, BatchNorm folded into the conv for
  inference (`layout`);
- glibc's malloc keeps freed activations for the next batch (`memory`).

The flat-buffer SGD (`sgd`) is chosen by `training.optim.make_optimizer`, and the data-parallel average sums its
gradient buffer in place (`parallel.distributed.GradientAverage`).
"""

from __future__ import annotations

import types

import torch
from torch import nn

from mnist_tiny.fast import kernels
from mnist_tiny.fast.layout import fold_batchnorm, inference_copy, lay_out
from mnist_tiny.process_memory import keep_freed_memory

__all__ = ["prepare", "inference_copy", "fold_batchnorm", "accelerate"]


def prepare(model: nn.Module, device: torch.device, training: bool = False, kernels: bool = True) -> nn.Module:
    """`model` ready to run on `device`: its faster kernels swapped in (unless `kernels` is false), laid out for the
    work, folded for inference (without `training`: eval mode too)."""
    keep_freed_memory()
    if device.type == "cpu" and kernels:
        accelerate(model)
    return lay_out(model, device, training)


def accelerate(model: nn.Module) -> nn.Module:
    """In place, the same computation with the CPU kernels: each `nn.Dropout` becomes `kernels.Dropout` (a
    subclass: same repr, same state dict), and each Sequential that starts Conv2d → BatchNorm2d → MaxPool2d with a
    conv whose channels are not a multiple of 8 runs through `kernels.conv_norm_pool_forward`."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, kernels.Dropout(child.p, child.inplace))
        if isinstance(parent, nn.Sequential) and _conv_norm_pool(parent):
            parent.forward = types.MethodType(kernels.conv_norm_pool_forward, parent)
    return model


def _conv_norm_pool(block: nn.Sequential) -> bool:
    # A Sequential whose class has a forward of its own computes something else: it keeps it.
    if len(block) < 3 or type(block).forward is not nn.Sequential.forward:
        return False
    conv, norm, pool = block[0], block[1], block[2]
    return (isinstance(conv, nn.Conv2d) and conv.out_channels % 8 != 0 and isinstance(pool, nn.MaxPool2d)
            and isinstance(norm, (nn.BatchNorm2d, nn.Identity)))
