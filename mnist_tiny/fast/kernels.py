"""The CPU kernels `mnist_tiny.fast` swaps in: the same computations as torch's layers, faster on this work.

Each is measured in docs/performance.md ("What made the difference"); tests/test_layers.py checks each against
the plain torch layers it stands for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Dropout(nn.Dropout):
    """`nn.Dropout` (same arguments, same state dict, same printout), with a cheaper mask on the CPU.

    torch's CPU dropout draws one 32-bit random number per element; this draws one 64-bit number per four
    elements and keeps an element when its 16-bit slice clears the threshold, so `p` is honoured to 1/65536.
    Masks come from torch's default generator, as `nn.Dropout`'s do (a resumed run replays them). Other devices
    use `nn.Dropout` itself.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or not 0 < self.p < 1:
            return super().forward(x)
        return x * dropout_mask(x, self.p)


def dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """0 with probability `p` (to 1/65536), else 1/(1-p): a tensor shaped and laid out like `x`."""
    n = x.numel()
    # Uniform over all 64 bits (the range's one missing value is a 2^-64 bias), so each 16-bit slice is uniform.
    draws = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
    keep = draws.view(torch.int16)[:n] >= round(p * 65536) - 32768
    mask = keep.to(x.dtype).mul_(1 / (1 - p))
    dense = x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
    return mask.as_strided(x.shape, x.stride()) if dense else mask.view(x.shape)


def pooled_at_width_of_8(x: torch.Tensor, conv: nn.Conv2d, norm: nn.Module | None,
                         pool: nn.MaxPool2d) -> torch.Tensor:
    """`pool(norm(conv(x)))`, where `norm` is an affine `BatchNorm2d`, `nn.Identity` (folded into the conv) or None.

    On a channels-last CPU tensor, when the conv's output channels are not a multiple of 8 (AVX2's 8 floats), the
    conv and BatchNorm run with zero filters appended up to the next multiple and the extra channels are dropped
    after the pool, where the map is 4× smaller: both kernels are faster at the full width. Outputs and running
    statistics are bit for bit the plain path's; gradients match to float rounding (BatchNorm sums in another
    order at 16 channels).
    """
    out_channels, pad = conv.out_channels, -conv.out_channels % 8
    known_norm = norm is None or isinstance(norm, nn.Identity) or (
        isinstance(norm, nn.BatchNorm2d) and norm.affine and norm.track_running_stats)
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    plain_conv = conv.padding_mode == "zeros" and not isinstance(conv.padding, str) and conv.groups == 1
    if pad == 0 or not known_norm or not plain_conv or x.device.type != "cpu" or not channels_last:
        return pool(conv(x) if norm is None else norm(conv(x)))
    weight = F.pad(conv.weight, (0, 0, 0, 0, 0, 0, 0, pad)).contiguous(memory_format=torch.channels_last)
    bias = None if conv.bias is None else F.pad(conv.bias, (0, pad))
    z = F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    if isinstance(norm, nn.BatchNorm2d):
        z = _padded_batch_norm(z, norm, pad)
    return _Narrow.apply(pool(z), out_channels)


def _padded_batch_norm(z: torch.Tensor, norm: nn.BatchNorm2d, pad: int) -> torch.Tensor:
    """`norm(z)` for `z` with `pad` extra channels at the end, as `nn.BatchNorm2d.forward` computes it."""
    momentum = norm.momentum or 0.0
    if norm.training:
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:  # a cumulative average
            momentum = 1.0 / float(norm.num_batches_tracked)
    mean = F.pad(norm.running_mean, (0, pad))
    var = F.pad(norm.running_var, (0, pad), value=1.0)
    out = F.batch_norm(z, mean, var, F.pad(norm.weight, (0, pad)), F.pad(norm.bias, (0, pad)), norm.training,
                       momentum, norm.eps)
    if norm.training:  # F.batch_norm updated the padded copies
        with torch.no_grad():
            norm.running_mean.copy_(mean[:norm.num_features])
            norm.running_var.copy_(var[:norm.num_features])
    return out


class _Narrow(torch.autograd.Function):
    """`z[:, :channels]` as a channels-last tensor, whose gradient is channels-last too (slicing's own backward
    returns a contiguous one, which the max-pool before it converts back: an extra pass over the 28×28 map)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, channels: int) -> torch.Tensor:
        ctx.width = z.shape[1]
        return z[:, :channels].contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        n, channels, h, w = grad.shape
        full = grad.new_zeros(n, h, w, ctx.width).permute(0, 3, 1, 2)  # channels-last strides
        full[:, :channels] = grad
        return full, None


def conv_norm_pool_forward(block: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """`block(x)` for a Sequential that starts Conv2d → BatchNorm2d (or the Identity folding leaves) → MaxPool2d:
    those three at a width of 8 channels, the rest as they are."""
    conv, norm, pool, *rest = block
    x = pooled_at_width_of_8(x, conv, norm, pool)
    for layer in rest:
        x = layer(x)
    return x
