"""Round five of the frontier screens (2026-12-04): the ≤1k and ≤600 classes, several seeds an arm.

    mnist-tiny train --model docs/screens/frontier_2026_12_04.py:NAME --recipe micro-1k --set input_scaling=unit \
        --seed N

A scratch file kept so the screens can be rerun (docs/results.md has their figures). Each is `_three_pools`
(nano-594's shape) with one change, named in its docstring; K0 is `micro-1k` as it was before this round. Two of
them went on to the registry: K4 is today's `micro-1k`, N2 is `nano-600`.
"""
from torch import nn

from mnist_tiny.models.layers import Normalize
from mnist_tiny.models.tiny import GlobalAvgPool, _three_pools, conv_bn, separable


class Twice(nn.Module):
    """One separable block's convolutions applied twice, each pass with its own BatchNorm and PReLU (the
    statistics of the two passes differ): depth for 2·c + 1 parameters instead of a block's c·(c + 9) + 2·c + 1."""

    def __init__(self, block: nn.Sequential):
        super().__init__()
        self.first = block
        c = block[1].out_channels
        self.norm, self.act = nn.BatchNorm2d(c), nn.PReLU()

    def forward(self, x):
        x = self.first(x)
        return self.act(self.norm(self.first[1](self.first[0](x))))


def _shared(stem, c28, c14, c7, at: str) -> nn.Sequential:
    """`_three_pools` with PReLU whose block at 14×14 (`at="14"`, c28 == c14) or 7×7 (`at="7"`, c14 == c7) runs twice.

    Built here rather than by wrapping a block of `_three_pools`: the two shared blocks are made first, and that
    order of initial weights is the one the screened figures were measured with."""
    b14 = separable(c28, c14, act=nn.PReLU)
    b7 = separable(c14, c7, act=nn.PReLU)
    return nn.Sequential(
        Normalize(),
        conv_bn(1, stem, act=nn.PReLU), separable(stem, c28, act=nn.PReLU), nn.MaxPool2d(2),
        Twice(b14) if at == "14" else b14, nn.MaxPool2d(2),
        Twice(b7) if at == "7" else b7, nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(c7, 10, 1),
        GlobalAvgPool(),
    )


class K0(nn.Sequential):
    """`micro-1k` before round five: ReLU, 2×2 pools, 984 params."""
    def __init__(self):
        super().__init__(*_three_pools(6, 10, 14, 15))


class K1(nn.Sequential):
    """K0 with PReLU (one slope per activation): 988 params."""
    def __init__(self):
        super().__init__(*_three_pools(6, 10, 14, 15, act=nn.PReLU))


class K2(nn.Sequential):
    """K1's widths, the 7×7 block 14→14 run twice: 6-10-14-14, 991 params."""
    def __init__(self):
        super().__init__(*_shared(6, 10, 14, 14, at="7"))


class K3(nn.Sequential):
    """K1 with the 14×14 block run twice: 6-12-12-15 (c28 == c14), 999 params."""
    def __init__(self):
        super().__init__(*_shared(6, 12, 12, 15, at="14"))


class K4(nn.Sequential):
    """K1 with overlapping 3×3 max pools (today's `micro-1k`): 988 params."""
    def __init__(self):
        super().__init__(*_three_pools(6, 10, 14, 15, act=nn.PReLU, overlap=True))


class K5(nn.Sequential):
    """More stroke detectors: 8-10-13-14 with PReLU: 987 params."""
    def __init__(self):
        super().__init__(*_three_pools(8, 10, 13, 14, act=nn.PReLU))


class N1(nn.Sequential):
    """`nano-594` with the 14×14 block run twice and 9 channels at 7×7: 5-8-8-9, 591 params."""
    def __init__(self):
        super().__init__(*_shared(5, 8, 8, 9, at="14"))


class N2(nn.Sequential):
    """`nano-594` with overlapping 3×3 max pools (the registry's `nano-600`): 594 params."""
    def __init__(self):
        super().__init__(*_three_pools(5, 8, 8, 10, act=nn.PReLU, overlap=True))


class N3(nn.Sequential):
    """6 stroke detectors, the 7×7 block 8→8 run twice: 6-8-8-8, 599 params."""
    def __init__(self):
        super().__init__(*_shared(6, 8, 8, 8, at="7"))


class N4(nn.Sequential):
    """6 stroke detectors, the 14×14 block 8→8 run twice: 6-8-8-8, 599 params."""
    def __init__(self):
        super().__init__(*_shared(6, 8, 8, 8, at="14"))

