"""Batch augmentation with tensor ops: one random affine per image, applied to the whole batch at once."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_float(images: torch.Tensor) -> torch.Tensor:
    """N×28×28 uint8 → N×1×28×28 float in [0, 1], the input every model takes."""
    return images.unsqueeze(1).float().div_(255)


def random_affine(
    x: torch.Tensor, rotate: float, translate: float, scale: float, generator: torch.Generator,
    rows: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Rotate by ±`rotate` degrees, zoom by 1±`scale`, shift by ±`translate` of the width, per image.

    Sampling the N affine matrices and resampling with one `affine_grid`/`grid_sample` call costs about as much as
    a single conv layer, instead of N PIL round-trips. `rows=(start, batch)` says `x` is rows start.. of a global
    batch of `batch` images (a distributed shard): the draws are made for the whole batch, identically in every
    process, so each image gets the same transform whatever the number of processes.
    """
    if rotate == 0 and translate == 0 and scale == 0:
        return x
    start, n = rows if rows is not None else (0, x.shape[0])

    def uniform(bound: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator, device=x.device) * 2 - 1) * bound

    angle = uniform(math.radians(rotate))
    zoom = 1 + uniform(scale)
    shift = uniform(2 * translate), uniform(2 * translate)  # affine_grid coordinates span [-1, 1]
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[0]], 1), torch.stack([sin, cos, shift[1]], 1)], 1)
    theta = theta[start:start + x.shape[0]]
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
