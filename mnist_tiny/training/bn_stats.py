"""BatchNorm statistics taken again on clean training images before a checkpoint is scored and saved
(`--set recalibrate_bn=N`).

During training each BatchNorm keeps a running average (momentum 0.1) of the statistics of recent batches: in
effect the last ~10 batches, of *augmented* images, and with several processes of one process's shard of each
batch. Those figures are noisy and describe rotated, zoomed, shifted digits, not the plain ones the model reads.
Averaging the statistics over N unaugmented training images instead changes no weight and costs one forward pass
over them; it never looks at the validation or the test split. What it gained, per model, is in docs/results.md.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mnist_tiny.data.augment import to_float


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def norms_of(model: nn.Module) -> list[nn.Module]:
    """The BatchNorm layers of `model` that keep running statistics (and so are read with them in eval mode)."""
    return [m for m in model.modules() if isinstance(m, BATCH_NORMS) and m.track_running_stats]


def recalibrated(model: nn.Module, images: torch.Tensor, count: int, seed: int, batch_size: int = 500) -> nn.Module:
    """A copy of `model` in eval mode whose BatchNorm running statistics are averaged (equal weight per batch of
    `batch_size`) over `count` of `images` (uint8 N×28×28, on the model's device), drawn by `seed`, unaugmented.

    Only the BatchNorm layers run in training mode, so a dropout before one does not widen its statistics."""
    model = copy.deepcopy(model).eval()
    norms = norms_of(model)
    if not norms or count <= 0 or len(images) == 0:
        return model
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: each batch counts the same
        m.train()
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
    with torch.no_grad():
        for chunk in order.split(batch_size):
            model(to_float(images[chunk.to(images.device)]))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()
