"""A compact CNN for MNIST, written the way the course asks: BatchNorm, Dropout, global average pooling, FC.

mnist-tiny feeds it the classic normalised input, (x - 0.1307) / 0.3081, as most course code expects
(`RECIPE` below could say `"input_scaling": "unit"` for raw [0, 1] pixels instead).

    mnist-tiny params --model model.py:Net       # layers, parameters, receptive field, the course rules
    mnist-tiny train --model model.py:Net        # the recipe below; best.pt is chosen on validation
    mnist-tiny check --model model.py:Net --checkpoint runs/<run>/best.pt --min-acc 99.4

Shape of the network (receptive field in brackets):
    28×28: 3×3 conv to 8 [3], 3×3 conv to 12 [5], max-pool [6]
    14×14: 1×1 conv to 8 (a cheap transition), valid 3×3 to 12 [10] and to 16 [14], max-pool [16]
    5×5:   3×3 conv to 20 [24], global average pool, linear 20 → 10
Each conv is followed by ReLU, BatchNorm and a light Dropout.
"""

import torch.nn.functional as F
from torch import nn

# Training settings mnist-tiny reads from here (any `mnist-tiny train` flag; flags on the command line win).
# The rest are mnist-tiny's defaults: batch 64, SGD with Nesterov momentum, one-cycle learning rate up to 0.1.
RECIPE = {"epochs": 15}


def block(cin: int, cout: int, kernel: int = 3, padding: int = 0, dropout: float = 0.05) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding, bias=False), nn.ReLU(),
                         nn.BatchNorm2d(cout), nn.Dropout(dropout))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            block(1, 8, padding=1), block(8, 12, padding=1), nn.MaxPool2d(2),  # 28 -> 14
            block(12, 8, kernel=1), block(8, 12), block(12, 16), nn.MaxPool2d(2),  # 14 -> 12 -> 10 -> 5
            block(16, 20, padding=1),  # 5×5
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(20, 10)

    def forward(self, x):
        x = self.gap(self.features(x)).flatten(1)
        return F.log_softmax(self.fc(x), dim=1)
