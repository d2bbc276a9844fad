"""Our own tiny models: the parameter frontier.

Shared design rules, each paid for in parameters:
- Convolutions are followed by BatchNorm, so they carry no bias; ReLU (or PReLU) after BN.
- Spend channels at 28×28 only on what strokes need (edges, then stroke fragments), then halve the resolution
  early: a 3×3 kernel at 14×14 or 5×5 costs the same parameters but sees 2–4× more of the digit.
- A 1×1 "transition" after each pool squeezes channels before the next, more expensive 3×3 block.
- True global average pooling over the last feature map (every position counts, unlike an AvgPool2d(3) on 5×5),
  then one small linear layer to the 10 classes.
- The receptive field must cover the 28×28 digit before the global pool; each docstring says where it does.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from mnist_tiny.models.layers import Normalize
from mnist_tiny.models.registry import register_model


Activation = Callable[[], nn.Module]


def conv_bn(cin: int, cout: int, kernel: int = 3, padding: int = 1, groups: int = 1,
            act: Activation = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), act())


def separable(cin: int, cout: int, padding: int = 1, act: Activation = nn.ReLU) -> nn.Sequential:
    """Depthwise 3×3 (9 weights per channel) then pointwise 1×1: ~1/8 of a full 3×3 conv's parameters."""
    return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=padding, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), act())


class GlobalAvgPool(nn.Module):
    is_global_pool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class Head(nn.Sequential):
    def __init__(self, channels: int, dropout: float = 0.0):
        layers = [GlobalAvgPool()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(channels, 10)]
        super().__init__(*layers)


@register_model(
    "tiny-6k",
    "Ours: 8-16 @28 → pool → 1×1 to 8 → 12-16 @12/10 → pool → 16 @5, true GAP, FC",
    recipe={"epochs": 15, "lr": 0.05},
)
def tiny_6k() -> nn.Module:
    """6,570 parameters; receptive field 24 at the last 3×3 conv, and the GAP pools 5×5 positions spaced 4 apart,
    so every output sees the whole 28×28 digit.

    28×28: 1→8→16 (RF 5) · pool → 14×14 (RF 6) · 1×1 → 8 · valid 3×3 8→12 → 12×12 (RF 10), 12→16 → 10×10 (RF 14)
    · pool → 5×5 (RF 16) · 3×3 16→16 → 5×5 (RF 24) · GAP · Linear 16→10.
    """
    return nn.Sequential(
        Normalize(),
        conv_bn(1, 8), conv_bn(8, 16), nn.MaxPool2d(2),
        conv_bn(16, 8, kernel=1, padding=0),
        conv_bn(8, 12, padding=0), conv_bn(12, 16, padding=0), nn.MaxPool2d(2),
        conv_bn(16, 16),
        Head(16),
    )


@register_model(
    "tiny-4k",
    "Ours, ≤5k: like tiny-6k with 12 channels at 28×28 and a separable last block",
    recipe={"epochs": 15, "lr": 0.05},
)
def tiny_4k() -> nn.Module:
    """4,330 parameters; RF 24 at the last (separable) 3×3, whole digit after GAP.

    28×28: 1→8→12 (RF 5) · pool · 1×1 → 8 · valid 3×3 8→12 (RF 10), 12→16 (RF 14) · pool → 5×5 (RF 16)
    · depthwise 3×3 + 1×1 16→16 (RF 24) · GAP · Linear 16→10.
    """
    return nn.Sequential(
        Normalize(),
        conv_bn(1, 8), conv_bn(8, 12), nn.MaxPool2d(2),
        conv_bn(12, 8, kernel=1, padding=0),
        conv_bn(8, 12, padding=0), conv_bn(12, 16, padding=0), nn.MaxPool2d(2),
        separable(16, 16),
        Head(16),
    )


def _two_pools(stem: int, c28: int, last: int, act: Activation = nn.ReLU) -> nn.Sequential:
    """`tiny-2k`'s shape: 1→stem, separable stem→c28 at 28×28 · pool · separable c28→16, 16→16 at 14×14 · pool ·
    separable 16→last at 7×7 · GAP · Linear last→10."""
    return nn.Sequential(
        Normalize(),
        conv_bn(1, stem, act=act), separable(stem, c28, act=act), nn.MaxPool2d(2),
        separable(c28, 16, act=act), separable(16, 16, act=act), nn.MaxPool2d(2),
        separable(16, last, act=act),
        Head(last),
    )


# The recipe of the `_three_pools` models (≤1k and ≤600 classes): the ≤600 screens' rate, no weight decay and
# light augmentation, for 30 epochs (the classes' limit), with BatchNorm statistics retaken on 10,000 clean images
# before each checkpoint. How each part was chosen, on validation: docs/results.md.
THREE_POOLS_RECIPE = {"epochs": 30, "lr": 0.1, "weight_decay": 0.0, "rotate": 5.0, "translate": 0.04, "scale": 0.04,
                      "recalibrate_bn": 10000}


def _three_pools(stem: int, c28: int, c14: int, c7: int, act: Activation = nn.ReLU,
                 overlap: bool = False) -> nn.Sequential:
    """`nano-594`'s shape: 1→stem, separable stem→c28 at 28×28 · pool · separable c28→c14 · pool · separable
    c14→c7 · pool to 4×4 · a 1×1 c7→10 with bias, whose global average is the logits.

    With `overlap`, each pool is a 3×3 max at stride 2 (padding 1) instead of a 2×2 one: the same map sizes (28 →
    14 → 7 → 4) and no parameters, but each pooled position sees its neighbours' strokes too (RF +1, +2, +4)."""
    def pool(ceil: bool = False) -> nn.MaxPool2d:
        return nn.MaxPool2d(3, stride=2, padding=1) if overlap else nn.MaxPool2d(2, ceil_mode=ceil)

    return nn.Sequential(
        Normalize(),
        conv_bn(1, stem, act=act), separable(stem, c28, act=act), pool(),
        separable(c28, c14, act=act), pool(),
        separable(c14, c7, act=act), pool(ceil=True),
        nn.Conv2d(c7, 10, 1),
        GlobalAvgPool(),
    )


@register_model(
    "tiny-2k",
    "Ours, ≤2k: one full 3×3 at 28×28, then depthwise-separable blocks, true GAP, FC",
    recipe={"epochs": 15, "lr": 0.08, "weight_decay": 1e-4},
)
def tiny_2k() -> nn.Module:
    """1,758 parameters; RF 3 → 5 → 6 (pool) → 10 → 14 → 16 (pool) → 24 at the last conv; GAP over 7×7 sees all.

    28×28: 1→8 (RF 3), separable 8→12 (RF 5) · pool → 14×14 · separable 12→16 (RF 10), 16→16 (RF 14)
    · pool → 7×7 · separable 16→20 (RF 24) · GAP · Linear 20→10.
    """
    return _two_pools(stem=8, c28=12, last=20)


@register_model(
    "micro-2k",
    "Ours, ≤2k: tiny-2k with 10 stroke detectors at 28×28, 24 channels at 7×7 and PReLU, trained 20 epochs",
    # EMA of the weights and BatchNorm statistics retaken on 10,000 clean images, chosen on validation (results.md).
    recipe={"epochs": 20, "lr": 0.08, "weight_decay": 1e-4, "ema": 0.999, "recalibrate_bn": 10000},
)
def micro_2k() -> nn.Module:
    """1,939 parameters; RF 3 → 5 → 6 (pool) → 10 → 14 → 16 (pool) → 24 at the last conv; GAP over 7×7 sees all.

    28×28: 1→10 (RF 3), separable 10→12 (RF 5) · pool → 14×14 · separable 12→16 (RF 10), 16→16 (RF 14)
    · pool → 7×7 · separable 16→24 (RF 24) · GAP · Linear 24→10, each BatchNorm followed by a PReLU with one
    learned slope for negative inputs (5 parameters in all). Against `tiny-2k` the 176 parameters go to the stroke detectors
    (the lesson of the ≤600 screens) and the last block, and the recipe runs 20 epochs, the class's limit, instead
    of 15, with an EMA of the weights whose BatchNorm statistics are retaken on clean training images at the end of
    each epoch (docs/results.md).
    """
    return _two_pools(stem=10, c28=12, last=24, act=nn.PReLU)


@register_model(
    "micro-1k",
    "Ours, ≤1k: nano-594's design wider (6 detectors, separable 10 @28, 14 @14, 15 @7), PReLU, overlapping 3×3 max pools, 1×1 to the logits, 30 epochs",
    recipe=THREE_POOLS_RECIPE,
)
def micro_1k() -> nn.Module:
    """988 parameters; RF 3 → 5 at 28×28 → 7 (pool) → 11 → 15 (pool) → 23 → 31 (pool), the 4×4 positions 8 px
    apart: the whole digit before the global average.

    28×28: 1→6, separable 6→10 · 3×3 max pool, stride 2 → 14×14 · separable 10→14 · pool → 7×7 · separable 14→15
    · pool → 4×4 · 1×1 15→10 with bias, whose global average is the logits; each BatchNorm is followed by a PReLU
    with one learned slope (4 parameters). The pools overlap (3×3 windows, stride 2): the same map sizes and
    parameters as 2×2 pools, chosen on validation in the screens of round five (docs/results.md). It trains 30
    epochs, the class's limit, with its BatchNorm statistics retaken on clean training images at the end of each.
    """
    return _three_pools(stem=6, c28=10, c14=14, c7=15, act=nn.PReLU, overlap=True)


@register_model(
    "tiny-600",
    "Ours, ≤600: 4-8-12 channels, separable convs, three poolings, GAP straight to the 10 logits",
    recipe={"epochs": 20, "lr": 0.1, "weight_decay": 0.0, "rotate": 5.0, "translate": 0.04, "scale": 0.04},
)
def tiny_600() -> nn.Module:
    """558 parameters; RF 3 → 4 (pool) → 8 → 10 (pool) → 18 → 22 (pool) → 38: the whole digit before GAP.

    28×28: 1→4 · pool → 14×14 · separable 4→8 · pool → 7×7 · separable 8→12 · pool → 4×4 · depthwise 3×3 and a
    1×1 12→10 with bias, whose global average *is* the logits: no FC layer, which would cost 130 more parameters.
    """
    return nn.Sequential(
        Normalize(),
        conv_bn(1, 4), nn.MaxPool2d(2),
        separable(4, 8), nn.MaxPool2d(2),
        separable(8, 12), nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False), nn.Conv2d(12, 10, 1),
        GlobalAvgPool(),
    )


@register_model(
    "nano-594",
    "Ours, ≤600: 5 stroke detectors and a separable block at 28×28, separable 8 @14 and 10 @7, PReLU, 1×1 to the logits",
    recipe=THREE_POOLS_RECIPE,
)
def nano_594() -> nn.Module:
    """594 parameters; RF 3 → 5 at 28×28 → 6 (pool) → 10 → 12 (pool) → 20 → 24 (pool), the 4×4 positions 8 px
    apart: the whole digit before the global average.

    28×28: 1→5, separable 5→8 · pool → 14×14 · separable 8→8 · pool → 7×7 · separable 8→10 · pool → 4×4 · 1×1
    10→10 with bias, whose global average is the logits; each BatchNorm is followed by a PReLU with one learned
    slope for negative inputs (4 parameters: one per channel would cost 31). Against `tiny-600` it spends its parameters
    where the strokes are, at 28×28 (docs/results.md: the screens that led here). It trains 30 epochs, with its
    BatchNorm statistics retaken on clean training images at the end of each.
    """
    return _three_pools(stem=5, c28=8, c14=8, c7=10, act=nn.PReLU)


@register_model(
    "nano-600",
    "Ours, ≤600: nano-594 with overlapping 3×3 max pools (5 detectors, separable 8 @28, 8 @14, 10 @7, PReLU)",
    recipe=THREE_POOLS_RECIPE,
)
def nano_600() -> nn.Module:
    """594 parameters, the ≤600 class's model; RF 3 → 5 at 28×28 → 7 (pool) → 11 → 15 (pool) → 23 → 31 (pool),
    the 4×4 positions 8 px apart: the whole digit before the global average.

    `nano-594` layer for layer (the same parameters, so the same state dict) with each 2×2 max pool replaced by a
    3×3 one at stride 2, padding 1: the maps keep their sizes (28 → 14 → 7 → 4), and each pooled position also
    sees the strokes beside its window. Chosen on validation in the screens of round five (docs/results.md). A
    separate name because a `nano-594` checkpoint would load into it without an error and read digits wrongly.
    """
    return _three_pools(stem=5, c28=8, c14=8, c7=10, act=nn.PReLU, overlap=True)
