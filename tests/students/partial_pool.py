from torch import nn


class Net(nn.Module):
    """An AvgPool2d(3) on a 5×5 map: averages only its top-left 3×3 (a partial 'GAP'); Dropout at p=0."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, 3), nn.ReLU(), nn.BatchNorm2d(8),  # 26
            nn.Conv2d(8, 16, 3), nn.ReLU(), nn.BatchNorm2d(16),  # 24
            nn.MaxPool2d(2),  # 12
            nn.Conv2d(16, 16, 3), nn.ReLU(), nn.BatchNorm2d(16),  # 10
            nn.MaxPool2d(2),  # 5
            nn.Dropout(0.0),
            nn.AvgPool2d(3),
        )
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.body(x).flatten(1))
