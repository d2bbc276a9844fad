"""Rows of digits as the line reader (`reader/line.py`) sees them: a row's ink (light on dark), cut to the ink and
scaled to LINE_HEIGHT px for its digits with a margin — composed directly in ink space, fast enough to make
hundreds of thousands in minutes.

Sources as the reader's other learned parts: MNIST *training* digits 0–54,999 (validation: 55,000–59,999),
resized, some thickened by a marker, and digits drawn stroke by stroke with pens of 2–24% of their size
(`reader/strokes.py`); 1–6 digits a row, gaps from an overlap of a fifth of a digit (touching, crossing) to
half a digit, each digit its own size and height on the line; specks, blur and noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

DIGIT_HEIGHT, MARGIN = 20, 4  # a digit's height in the row image, as in MNIST's 28×28, and the margin round it
LINE_HEIGHT = DIGIT_HEIGHT + 2 * MARGIN
MAX_WIDTH = 256  # a row image's widest (wider rows are squeezed): 6 wide digits at their own aspect
TRAIN_SPAN, VAL_SPAN = slice(0, 55_000), slice(55_000, 60_000)


def _tight(mark: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mark > 0.1)
    if not len(rows):
        return mark
    return mark[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def _resize(mark: np.ndarray, height: int, width: int) -> np.ndarray:
    image = Image.fromarray(mark.astype(np.float32), "F")
    return np.asarray(image.resize((max(1, width), max(1, height)), Image.BILINEAR), np.float32)


def line_of(ink: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A row's ink (any size, light on dark) → the line reader's input: cut to the ink, its height scaled to
    DIGIT_HEIGHT (the aspect kept, at most MAX_WIDTH − 2·MARGIN wide), MARGIN zeros round it; float32 in [0, 1].
    And the box it was cut to in `ink` (top, bottom, left, right; end-exclusive)."""
    ink = np.clip(ink, 0, 1)
    rows, cols = np.nonzero(ink > 0.1)
    if not len(rows):
        return np.zeros((LINE_HEIGHT, 2 * MARGIN + 1), np.float32), (0, ink.shape[0], 0, ink.shape[1])
    box = (int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
    mark = ink[box[0]:box[1], box[2]:box[3]]
    h, w = mark.shape
    width = min(MAX_WIDTH - 2 * MARGIN, max(1, round(w * DIGIT_HEIGHT / h)))
    out = np.zeros((LINE_HEIGHT, width + 2 * MARGIN), np.float32)
    out[MARGIN:MARGIN + DIGIT_HEIGHT, MARGIN:MARGIN + width] = np.clip(_resize(mark, DIGIT_HEIGHT, width), 0, 1)
    return out, box


def line_image(ink: np.ndarray) -> np.ndarray:
    """`line_of` without the box: the line reader's input for a row's ink."""
    return line_of(ink)[0]


def _digit_mark(rng, mnist, labels, span) -> tuple[np.ndarray, int]:
    if rng.random() < 0.3:
        from mnist_tiny.reader.strokes import STROKES, drawn

        digit = int(rng.integers(0, 10))
        return _tight(drawn(STROKES[digit], rng, int(rng.integers(40, 100)), (2, 24))), digit
    index = int(rng.integers(span.start, span.stop))
    mark = mnist[index].astype(np.float32) / 255
    if rng.random() < 0.25:
        big = Image.fromarray((mark * 255).astype(np.uint8)).resize((56, 56), Image.BILINEAR)
        mark = np.asarray(big.filter(ImageFilter.MaxFilter(3)), np.float32) / 255  # a marker
    return _tight(mark), int(labels[index])


def sample(rng, mnist: np.ndarray, labels: np.ndarray, span: slice, length: int | None = None
           ) -> tuple[np.ndarray, list[int]]:
    """One row: its line image and its digits."""
    length = length or int(rng.integers(1, 7))
    marks, digits = [], []
    for _ in range(length):
        mark, digit = _digit_mark(rng, mnist, labels, span)
        height = DIGIT_HEIGHT * 2 * rng.uniform(0.85, 1.1)  # drawn at twice the row image's scale
        width = mark.shape[1] * height / mark.shape[0] * rng.uniform(0.85, 1.15)
        marks.append(_resize(mark, round(height), round(width)))
        digits.append(digit)
    heights = [m.shape[0] for m in marks]
    canvas = np.zeros((max(heights) + 16, sum(m.shape[1] for m in marks) + 16 * length + 16), np.float32)
    x = 8
    slope = rng.normal(0, 0.04)
    for mark in marks:
        y = 8 + int(rng.integers(0, max(heights) - mark.shape[0] + 1)) + int(np.clip(rng.normal(0, 1.5), -4, 4))
        y = int(np.clip(y + slope * x, 0, canvas.shape[0] - mark.shape[0]))
        h, w = mark.shape
        canvas[y:y + h, x:x + w] = np.maximum(canvas[y:y + h, x:x + w], mark)
        x += w + int(rng.uniform(-0.2, 0.5) * np.mean([m.shape[1] for m in marks]) * (1 if w > 12 else 0.6))
        x = max(x, 1)
    canvas = canvas[:, :max(x, 1) + 8]
    if rng.random() < 0.3:  # specks
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = int(rng.integers(0, canvas.shape[0])), int(rng.integers(0, canvas.shape[1]))
            canvas[cy:cy + 2, cx:cx + 2] = rng.uniform(0.3, 1)
    line = line_image(canvas)
    if rng.random() < 0.3:
        blurred = Image.fromarray((line * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8)))
        line = np.asarray(blurred, np.float32) / 255
    line = line * rng.uniform(0.7, 1.0) + rng.normal(0, rng.uniform(0, 0.05), line.shape)
    return np.clip(line, 0, 1).astype(np.float32), digits


def make(count: int, seed: int, validation: bool, data_dir: Path) -> tuple[list[np.ndarray], list[list[int]]]:
    """`count` rows (line images of varying width) and their digits."""
    from mnist_tiny.data.mnist import load_mnist

    rng = np.random.default_rng(seed)
    train = load_mnist(Path(data_dir), False, test=False)["train"]
    mnist, labels = train.images.numpy(), train.labels.numpy()
    span = VAL_SPAN if validation else TRAIN_SPAN
    lines, texts = [], []
    for _ in range(count):
        line, digits = sample(rng, mnist, labels, span)
        lines.append(line)
        texts.append(digits)
    return lines, texts
