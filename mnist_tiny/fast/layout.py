"""Memory layout and BatchNorm folding: how a model is laid out on the device it runs on.

On the CPU the best layout depends on the work and on the thread count (docs/performance.md, "Layout by thread
count"): channels-last for inference and for one-thread training, the contiguous layout (NCHW) for training on
several threads. A 1-channel input is the same bytes in either layout, so inputs need no conversion.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def lay_out(model: torch.nn.Module, device: torch.device, training: bool = False) -> torch.nn.Module:
    """Move a model to `device` in the memory layout that runs it fastest there (other devices than the CPU:
    unmeasured, left as they are).

    Without `training`, the model is for inference only: it is put in eval mode and, on the CPU, its BatchNorm
    layers are folded into the convolutions before them (`fold_batchnorm`), so its state dict changes shape.
    """
    model = model.to(device)
    if not training:
        model.eval()
        if device.type == "cpu":
            fold_batchnorm(model)
    if device.type == "cpu" and (not training or torch.get_num_threads() == 1):
        model = model.to(memory_format=torch.channels_last)
    return model


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """In place: each eval-mode BatchNorm2d that directly follows a Conv2d in an `nn.Sequential` is merged into the
    conv's weight and bias and replaced by `nn.Identity` (same outputs to float rounding, one pass over the
    activations fewer)."""
    for sequence in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(sequence) - 1):
            conv, norm = sequence[i], sequence[i + 1]
            if (isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and not conv.training
                    and not norm.training and norm.running_mean is not None):
                sequence[i], sequence[i + 1] = fuse_conv_bn_eval(conv, norm), nn.Identity()
    return model


def inference_copy(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """On the CPU, a channels-last copy for evaluation (a copy, so the model being trained keeps its layout);
    elsewhere the model itself."""
    return lay_out(copy.deepcopy(model), device) if device.type == "cpu" else model
