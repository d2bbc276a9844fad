"""`fast-11k`, `fast-6k` and `fast-25k`: built to reach 99.4% in the fewest seconds, not in the fewest parameters.

In `lean-6k` the 8→12 conv at 28×28 is 677k of the 1.12M multiply-adds per image, and the ReLU and BatchNorm
passes over its output are the largest of those memory-bound steps; widening the layers after the first pool
instead reached 99.4% in far fewer epochs in our screens. So, from `lean-6k`, `fast-11k`:
- block 1's second conv is pooled straight away: conv → MaxPool → ReLU → BatchNorm, so its ReLU and BatchNorm run
  on 14×14 instead of 28×28 (pool-then-ReLU equals ReLU-then-pool exactly; BatchNorm after the pool is a real
  change: its statistics are taken over the pooled map);
- the 14×14 and 5×5 stages are wider (8→16→24, then 24 instead of 8→12→16, then 20).
That is 11,278 parameters instead of 6,878, for 6 epochs instead of 15. Its recipe (batch 128, lr 0.1, 6 epochs)
was chosen on validation accuracy.

`fast-6k` (the default from 2026-12-02 to 2026-12-07) keeps the first change only (`lean-6k`'s 6,878 parameters in
`fast-11k`'s order) and trains 10 epochs with its BatchNorm statistics taken again on clean training images
(`training.bn_stats`): as accurate as `fast-11k` with 4,400 parameters fewer, and slower to train (its epoch costs
about as much: the 28×28 stage is the same).

`fast-25k` spends parameters where they are cheap on a CPU: block 1's second conv 16 wide (a multiple of the 8 SIMD
lanes) and wider stages after the first pool, where maps are 4-30× smaller. It has twice `fast-6k`'s multiply-adds
but costs far less than twice the time a step (the 28×28 stage's memory-bound passes, not the arithmetic, set the
pace on a CPU), and it needs 5 epochs to `fast-6k`'s 10: the default since 2026-12-07. Figures and times:
docs/results.md and docs/performance.md.
"""

import torch
from torch import nn

from mnist_tiny.models.layers import Normalize, conv_relu_bn
from mnist_tiny.models.registry import register_model


class FastNet(nn.Module):
    """`fast-11k`'s layer order at any widths `(a, b, t, d, e, f)`: 1→a→b at 28×28 (b pooled before its ReLU and
    BatchNorm), 1×1 to t, valid 3×3 t→d→e at 14×14 → 10×10, pool, 3×3 e→f at 5×5, AvgPool2d(3), Linear f→10.

    Receptive field: 5 at 28×28, 6 after the pool, 10 and 14 after the valid 3×3s, 16 after the second pool and 24
    at the 5×5 conv (positions 4 px apart); the AvgPool2d(3) over the top-left 3×3 of that map spans 32 px."""

    def __init__(self, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        a, b, t, d, e, f = widths
        self.normalize = Normalize()
        self.block1 = nn.Sequential(  # 28×28 → 14×14, RF 6
            *conv_relu_bn(1, a, 1),
            nn.Conv2d(a, b, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(), nn.BatchNorm2d(b))
        self.transition = nn.Conv2d(b, t, 1, bias=False)  # bias-free: the valid 3×3 after it has one
        self.block2 = nn.Sequential(*conv_relu_bn(t, d, 0), *conv_relu_bn(d, e, 0))  # 14×14 → 10×10
        # The last BatchNorm has no affine: only linear steps follow (pool, FC), which absorb it (see lean.py).
        self.block3 = nn.Sequential(nn.MaxPool2d(2), *conv_relu_bn(e, f, 1, affine=False))  # 5×5
        self.gap = nn.AvgPool2d(3)  # as in s6-compact: the top-left 3×3 of the 5×5 map (it spans the digit)
        self.fc = nn.Linear(f, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.transition(self.block1(self.normalize(x)))))
        return self.fc(self.gap(x).flatten(1))


@register_model(
    "fast-11k",
    "Ours: lean-6k pooled before its second BatchNorm and wider after it (11,278 params), 6 epochs",
    # Batch 128 so that a 2-core CPU trains it as two one-thread processes of 64 (as lean-6k).
    recipe={"epochs": 6, "batch_size": 128, "lr": 0.1},
)
class Fast11k(FastNet):
    def __init__(self):
        super().__init__((8, 12, 8, 16, 24, 24))


@register_model(
    "fast-6k",
    "Ours, ≤6,900 and fast: fast-11k's order at lean-6k's widths (6,878 params), 10 epochs, BN statistics retaken",
    # BatchNorm statistics taken again on 2,000 clean training images before each checkpoint: docs/results.md.
    recipe={"epochs": 10, "batch_size": 128, "lr": 0.1, "recalibrate_bn": 2000},
)
class Fast6k(FastNet):
    """`lean-6k`'s widths (8-12 @28, 1×1 to 8, 12-16 @14/12, 20 @5) in `fast-11k`'s order: the second 28×28 conv
    pooled before its ReLU and BatchNorm. The screens and sweeps that chose it are in docs/results.md."""

    def __init__(self):
        super().__init__((8, 12, 8, 12, 16, 20))


@register_model(
    "fast-25k",
    "Ours, the default: fast-11k's layer order, 16 filters at 28×28 and wider after the pool (25,522 params), 5 epochs",
    # BatchNorm statistics retaken as fast-6k's; the recipe otherwise fast-11k's (screens: docs/results.md).
    recipe={"epochs": 5, "batch_size": 128, "lr": 0.1, "recalibrate_bn": 2000},
)
class Fast25k(FastNet):
    """`fast-11k`'s order with block 1's second conv 16 wide (a multiple of the CPU's 8 SIMD lanes) and the stages
    after the first pool wider (1×1 to 12, 24-32 at 14→10, 48 at 5×5): more capacity where it is cheap."""

    def __init__(self):
        super().__init__((8, 16, 12, 24, 32, 48))
