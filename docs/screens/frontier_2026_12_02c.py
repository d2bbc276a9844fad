"""Round three of the frontier screens (2026-12-02, evening): the ≤2k class with BatchNorm statistics retaken.

    MNIST_TINY_THREADS=1 mnist-tiny train --model docs/screens/frontier_2026_12_02c.py:NAME --recipe micro-2k \
        --set recalibrate_bn=10000 --seed N

A scratch file kept so the screens can be rerun (docs/results.md has their figures): none of these is a registry
model.
"""
from torch import nn

from mnist_tiny.models.layers import Normalize
from mnist_tiny.models.tiny import Head, conv_bn, separable


class T3W(nn.Sequential):
    """`micro-2k` with 12 stroke detectors at 28×28 (10 before) and 12 channels after them: 1,998 params."""

    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 12), separable(12, 12), nn.MaxPool2d(2),
                         separable(12, 16), separable(16, 16), nn.MaxPool2d(2),
                         separable(16, 24), Head(24))
