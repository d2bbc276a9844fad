"""The ≤600 and ≤1k candidates screened on 2026-12-02 (docs/results.md, "The frontier, second push").

    MNIST_TINY_THREADS=1 mnist-tiny train --model docs/screens/frontier_2026_12_02.py:F --recipe tiny-600 --epochs 10 --seed 1

A scratch file kept so the screens can be rerun: none of these is a registry model.
"""
import torch
from torch import nn
from mnist_tiny.models.layers import Normalize
from mnist_tiny.models.tiny import conv_bn, GlobalAvgPool


def sep(cin, cout, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), act())


class A(nn.Sequential):
    """8 stroke detectors at 28, sep 8->8 @14, sep 8->13 @7, pool 4, 1x1 to logits, GAP."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 8), nn.MaxPool2d(2), sep(8, 8), nn.MaxPool2d(2),
                         sep(8, 13), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(13, 10, 1), GlobalAvgPool())


class Shared(nn.Module):
    """1->12 at 28, then one separable block 12->12 reused at 14, 7, 4 (own BN each), 1x1 to logits, GAP."""
    def __init__(self, c=12):
        super().__init__()
        self.norm = Normalize()
        self.stem = conv_bn(1, c)
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.pw = nn.Conv2d(c, c, 1, bias=False)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(3))
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.out = nn.Conv2d(c, 10, 1)

    def forward(self, x):
        x = self.stem(self.norm(x))
        for bn in self.bns:
            x = torch.relu(bn(self.pw(self.dw(self.pool(x)))))
        return self.out(x).mean((2, 3))


class B(nn.Sequential):
    """like A, PReLU, 8->8->12 with dw at 4x4."""
    def __init__(self):
        super().__init__(Normalize(), nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.PReLU(8),
                         nn.MaxPool2d(2), sep(8, 8, lambda: nn.PReLU(8)), nn.MaxPool2d(2),
                         sep(8, 12, lambda: nn.PReLU(12)), nn.MaxPool2d(2, ceil_mode=True),
                         nn.Conv2d(12, 10, 1), GlobalAvgPool())


class F(nn.Sequential):
    """5 detectors + separable 5->8 at 28x28, then 8 @14, 10 @7, pool 4, 1x1 to logits, GAP."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 5), sep(5, 8), nn.MaxPool2d(2), sep(8, 8), nn.MaxPool2d(2),
                         sep(8, 10), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(10, 10, 1), GlobalAvgPool())


class G(nn.Sequential):
    """A with a depthwise 3x3 before the 1x1 head at 4x4 (position-aware head), channels 8-8-10."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 8), nn.MaxPool2d(2), sep(8, 8), nn.MaxPool2d(2),
                         sep(8, 9), nn.MaxPool2d(2, ceil_mode=True),
                         nn.Conv2d(9, 9, 3, padding=1, groups=9, bias=False), nn.Conv2d(9, 10, 1), GlobalAvgPool())


class F6(nn.Sequential):
    """6 detectors + separable 6->8 at 28x28, then 8 @14, 9 @7, pool 4, 1x1 to logits, GAP."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 6), sep(6, 8), nn.MaxPool2d(2), sep(8, 8), nn.MaxPool2d(2),
                         sep(8, 9), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(9, 10, 1), GlobalAvgPool())


class F3(nn.Sequential):
    """Two separable blocks at 28x28 (4 -> 6 -> 8), then 8 @14, 10 @7, pool 4, 1x1, GAP."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 4), sep(4, 6), sep(6, 8), nn.MaxPool2d(2), sep(8, 8),
                         nn.MaxPool2d(2), sep(8, 10), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(10, 10, 1),
                         GlobalAvgPool())


def dw_bn(c):
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c), nn.ReLU())


class F7(nn.Sequential):
    """4 -> 6 -> 8 at 28x28, sep 8->8 @14, depthwise @7, pool 4, 1x1 to logits, GAP."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 4), sep(4, 6), sep(6, 8), nn.MaxPool2d(2), sep(8, 8),
                         nn.MaxPool2d(2), dw_bn(8), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(8, 10, 1),
                         GlobalAvgPool())


class F9(nn.Sequential):
    """4 -> 6 -> 8 at 28x28, depthwise @14, sep 8->9 @7, pool 4, 1x1 to logits, GAP."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 4), sep(4, 6), sep(6, 8), nn.MaxPool2d(2), dw_bn(8),
                         nn.MaxPool2d(2), sep(8, 9), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(9, 10, 1),
                         GlobalAvgPool())


class F10(nn.Sequential):
    """3 -> 6 -> 7 at 28x28, 8 @14, 8 @7, pool 4, 1x1 to logits, GAP (F3 within 600)."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 3), sep(3, 6), sep(6, 7), nn.MaxPool2d(2), sep(7, 8),
                         nn.MaxPool2d(2), sep(8, 8), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(8, 10, 1),
                         GlobalAvgPool())


class F11(nn.Sequential):
    """4 -> 6 -> 8 at 28x28, 8 @14, 8 @7, pool 4, 1x1 to logits, GAP."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 4), sep(4, 6), sep(6, 8), nn.MaxPool2d(2), sep(8, 8),
                         nn.MaxPool2d(2), sep(8, 8), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(8, 10, 1),
                         GlobalAvgPool())


class M1(nn.Sequential):
    """micro-1k: 6 + separable 6->10 at 28x28, 14 @14, 15 @7, pool 4, 1x1 to logits, GAP."""
    def __init__(self):
        super().__init__(Normalize(), conv_bn(1, 6), sep(6, 10), nn.MaxPool2d(2), sep(10, 14), nn.MaxPool2d(2),
                         sep(14, 15), nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(15, 10, 1), GlobalAvgPool())
