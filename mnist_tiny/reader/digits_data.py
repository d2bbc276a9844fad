"""Digits as the reader sees them: one digit a page, put on paper as people photograph and draw them, cut out and
centred by the reader's own `locate` — the crops the reader's digit model (`reader/digits.onnx`) is tuned on.

Sources as the gate's (`gate_data`): MNIST *training* digits (resized, thickened by a marker, thinned by a fine
pen) and digits drawn stroke by stroke with pens of 2–24% of their size (`reader/strokes.py`). Validation never
shares a source image with training: MNIST training digits 55,000–59,999 (training: 0–54,999), other seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnist_tiny.reader.gate_data import DRAWN_SHARE, _digit, mnist_framed, on_paper, seen

TRAIN_SPAN, VAL_SPAN = slice(0, 55_000), slice(55_000, 60_000)


def digit_crops(count: int, seed: int, validation: bool, data_dir: Path,
                drawn_share: float = DRAWN_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """`count` reader crops (N×28×28 uint8, light on dark as MNIST) and their digits (N int64), `drawn_share` of
    them drawn stroke by stroke (the rest MNIST's)."""
    from mnist_tiny.data.mnist import load_mnist

    rng = np.random.default_rng(seed)
    train = load_mnist(Path(data_dir), False, test=False)["train"]
    mnist, labels = train.images.numpy(), train.labels.numpy()
    span = VAL_SPAN if validation else TRAIN_SPAN
    crops, digits = [], []
    while len(crops) < count:
        mark, digit = _digit(rng, mnist, labels, span, drawn_share)
        if mark.max() < 0.2:
            continue
        grey = mnist_framed(mark, rng) if rng.random() < 0.05 else on_paper(mark, rng)
        made = seen(grey)
        if made is None:
            continue
        crops.append(np.round(made[0] * 255).astype(np.uint8))
        digits.append(digit)
    return np.stack(crops), np.array(digits, dtype=np.int64)
