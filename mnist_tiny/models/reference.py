"""The two reference architectures the project started from, reproduced layer for layer.

Both keep the originals' layers and parameter counts exactly (10,550 and 6,926). Two departures leave the
computation as it was: `Normalize`, the originals' input normalisation moved into the model (no parameters; the
models take raw [0, 1] pixels), and s6-attention's two max-pools, which run before the ReLU they follow in the
original (see `ConvBNPoolReLU`).
"""

import torch
from torch import nn

from mnist_tiny.models.layers import Normalize, SqueezeExcite
from mnist_tiny.models.registry import register_model


def _conv_bn(cin: int, cout: int, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=padding), nn.BatchNorm2d(cout), nn.ReLU())


class ConvBNPoolReLU(nn.Sequential):
    """`_conv_bn` followed by a 2×2 max-pool, with the pool moved before the ReLU.

    ReLU and max-pooling commute exactly: max(relu(a), relu(b)) = relu(max(a, b)), and the gradient reaches the
    same pixel either way (the window's first maximum, or none when it is ≤ 0). So outputs and gradients are the
    original's, and the ReLU runs on a quarter of the values. The conv and BatchNorm keep their places (and
    state-dict keys).
    """

    def __init__(self, cin: int, cout: int):
        conv, norm, relu = _conv_bn(cin, cout)
        super().__init__(conv, norm, nn.MaxPool2d(2), relu)


class ResidualBlock(nn.Module):
    """A 3×3 conv + BN branch added to a 1×1 conv branch (the 1×1 is the 'residual' path)."""

    def __init__(self, channels: int):
        super().__init__()
        self.shortcut = nn.Conv2d(channels, channels, 1)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)) + self.shortcut(x))


@register_model(
    "s6-attention",
    "Reference: conv 8-12-16 with BN, 1×1 residual branch, squeeze-excitation, GAP, FC",
    recipe={"epochs": 15, "lr": 0.05},
)
class S6Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.normalize = Normalize()
        self.block1 = nn.Sequential(_conv_bn(1, 8), ConvBNPoolReLU(8, 12), nn.Dropout(0.1))  # 28 → 14
        self.block2 = nn.Sequential(ConvBNPoolReLU(12, 16), nn.Dropout(0.1))  # 14 → 7
        self.residual = ResidualBlock(16)
        self.conv5 = _conv_bn(16, 16)
        self.attention = SqueezeExcite(16, 8)
        self.conv6 = nn.Sequential(_conv_bn(16, 16), nn.Dropout(0.1))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block2(self.block1(self.normalize(x)))
        x = self.attention(self.conv5(self.residual(x)))
        x = self.gap(self.conv6(x)).flatten(1)
        return self.fc(x)


def _conv_relu_bn_drop(cin: int, cout: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=padding), nn.ReLU(), nn.BatchNorm2d(cout), nn.Dropout2d(0.05))


@register_model(
    "s6-compact",
    "Reference: conv 8-12 → 1×1 transition → 12-16 → 20, BN, Dropout2d, AvgPool2d(3) on 5×5 (9 of 25), FC",
    recipe={"epochs": 15, "lr": 0.05},
)
class S6Compact(nn.Module):
    def __init__(self):
        super().__init__()
        self.normalize = Normalize()
        self.block1 = nn.Sequential(_conv_relu_bn_drop(1, 8, 1), _conv_relu_bn_drop(8, 12, 1))  # 28×28, RF 5
        self.transition = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(12, 8, 1))  # 14×14
        self.block2 = nn.Sequential(_conv_relu_bn_drop(8, 12, 0), _conv_relu_bn_drop(12, 16, 0))  # 10×10
        self.block3 = nn.Sequential(nn.MaxPool2d(2), _conv_relu_bn_drop(16, 20, 1))  # 5×5
        # As in the original: AvgPool2d(3) on 5×5 averages the top-left 3×3 window into a 1×1 map.
        self.gap = nn.AvgPool2d(3)
        self.fc = nn.Linear(20, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.transition(self.block1(self.normalize(x)))))
        return self.fc(self.gap(x).flatten(1))
