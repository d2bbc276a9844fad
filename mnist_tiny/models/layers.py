"""Small building blocks shared by the architectures."""

import torch
from torch import nn

# MNIST training-set pixel statistics. Models normalise internally, so callers feed plain [0, 1] pixels.
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class Normalize(nn.Module):
    """(x - mean) / std with fixed constants: no parameters, nothing in the state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - MNIST_MEAN) / MNIST_STD


def conv_relu_bn(cin: int, cout: int, padding: int, affine: bool = True) -> list[nn.Module]:
    """A 3×3 conv with bias, ReLU, then BatchNorm (the references' order), as a list to splice into a Sequential."""
    return [nn.Conv2d(cin, cout, 3, padding=padding), nn.ReLU(), nn.BatchNorm2d(cout, affine=affine)]


class SqueezeExcite(nn.Module):
    """Channel attention: global average → 1×1 squeeze → ReLU → 1×1 expand → sigmoid gate."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean((2, 3), keepdim=True)
        gate = torch.sigmoid(self.expand(torch.relu(self.squeeze(gate))))
        return x * gate
