"""The second round of frontier screens (2026-12-02, afternoon): small-and-fast, ≤2k, ≤5k, course-legal ≤8k.

    MNIST_TINY_THREADS=1 mnist-tiny train --model docs/screens/frontier_2026_12_02b.py:NAME --recipe fast-11k --seed 1

A scratch file kept so the screens can be rerun (docs/results.md has their figures): none of these is a registry
model.
"""
import torch
from torch import nn

from mnist_tiny.models.layers import Normalize
from mnist_tiny.models.tiny import GlobalAvgPool, Head, conv_bn, separable


def crb(cin, cout, padding, affine=True):
    return [nn.Conv2d(cin, cout, 3, padding=padding), nn.ReLU(), nn.BatchNorm2d(cout, affine=affine)]


class FastLean(nn.Module):
    """fast-11k's layer order at lean-6k's widths (6,878): 8-12 @28 pooled before ReLU/BN, 1x1 to 8, 12-16, 20 @5."""

    def __init__(self, c=(8, 12, 8, 12, 16, 20), gap="avg3", dropout=0.0):
        super().__init__()
        a, b, t, d, e, f = c
        self.normalize = Normalize()
        self.block1 = nn.Sequential(*crb(1, a, 1), nn.Conv2d(a, b, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                                    nn.BatchNorm2d(b))
        self.transition = nn.Conv2d(b, t, 1, bias=False)
        self.block2 = nn.Sequential(*crb(t, d, 0), *crb(d, e, 0))
        self.block3 = nn.Sequential(nn.MaxPool2d(2), *crb(e, f, 1, affine=False))
        self.gap = nn.AvgPool2d(3) if gap == "avg3" else GlobalAvgPool()
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(f, 10)

    def forward(self, x):
        x = self.block3(self.block2(self.transition(self.block1(self.normalize(x)))))
        return self.fc(self.drop(self.gap(x).flatten(1)))


class SF2(FastLean):
    """Fewer channels at 28 (8-10), more at 5x5: 6,884 params."""

    def __init__(self):
        super().__init__(c=(8, 10, 8, 12, 16, 22))


class T2W(nn.Sequential):
    """tiny-2k with 10 detectors at 28 and 24 channels at 7x7 (1,994 params)."""

    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 10), separable(10, 12), nn.MaxPool2d(2),
                         separable(12, 16), separable(16, 16), nn.MaxPool2d(2),
                         separable(16, 24), Head(24))


class Legal(nn.Module):
    """Course-legal: FastLean whose 5x5 conv is valid (3x3 map), a true GAP over it, active dropout, FC."""

    def __init__(self, c=(8, 12, 8, 12, 16, 24), dropout=0.05):
        super().__init__()
        a, b, t, d, e, f = c
        self.normalize = Normalize()
        self.block1 = nn.Sequential(*crb(1, a, 1), nn.Conv2d(a, b, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                                    nn.BatchNorm2d(b))
        self.transition = nn.Conv2d(b, t, 1, bias=False)
        self.block2 = nn.Sequential(*crb(t, d, 0), *crb(d, e, 0))
        self.block3 = nn.Sequential(nn.MaxPool2d(2), *crb(e, f, 0, affine=False))  # 5x5 -> 3x3
        self.head = nn.Sequential(GlobalAvgPool(), *([nn.Dropout(dropout)] if dropout else []), nn.Linear(f, 10))

    def forward(self, x):
        return self.head(self.block3(self.block2(self.transition(self.block1(self.normalize(x))))))


class Legal8k(Legal):
    """Legal with 14 channels in the first 14x14 conv: 7,936 params."""

    def __init__(self):
        super().__init__(c=(8, 12, 8, 14, 16, 24))


class S5(Legal):
    """<=5k: Legal's shape with 6-10 channels at 28x28, 10-14 at 14x14, 16 at 5x5, no dropout: 4,976 params."""

    def __init__(self):
        super().__init__(c=(6, 10, 8, 10, 14, 16), dropout=0.0)


class Strided(FastLean):
    """FastLean whose second 28x28 conv has stride 2 instead of a pool after it: a quarter of its multiply-adds
    (the largest of the model's), the same 6,878 parameters; RF 5 at 14x14 instead of 6."""

    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(*crb(1, 8, 1), nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.BatchNorm2d(12))


class M3(nn.Sequential):
    """<=1k, micro-2k's shape with one block fewer at 14x14: 8 @28, sep 10 @28, sep 12 @14, sep 16 @7, GAP, FC (996)."""

    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 8), separable(8, 10), nn.MaxPool2d(2),
                         separable(10, 12), nn.MaxPool2d(2), separable(12, 16), Head(16))
