"""Draw the sample images in this folder (no MNIST inside: strokes drawn here, then rendered as people's images).

    python examples/draw.py    # rewrites the images beside this file
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Digits (and letters) as pen strokes: one definition with the reader's gate data and the tests' numbers.
from mnist_tiny.reader.strokes import LETTERS, STROKES

HERE = Path(__file__).parent

LETTER_A = LETTERS["A"]  # not a digit: the reader should say so, not read a 4


def strokes(digit, size: int, width: float) -> Image.Image:
    """The digit (or a list of strokes) as white strokes on black, anti-aliased (drawn 4× larger, then shrunk)."""
    big = Image.new("L", (4 * size, 4 * size), 0)
    draw = ImageDraw.Draw(big)
    for line in STROKES[digit] if isinstance(digit, int) else digit:
        points = [(x * 4 * size / 100, y * 4 * size / 100) for x, y in line]
        draw.line(points, fill=255, width=int(4 * width), joint="curve")
        r = 2 * width
        for x, y in (points[0], points[-1]):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return big.resize((size, size), Image.LANCZOS)


def pen_on_paper(digit: int, rng: np.random.Generator) -> Image.Image:
    """Blue-black ink on cream paper, lit from one side, with grain; the digit off-centre on a larger page."""
    ink = np.asarray(strokes(digit, 260, 9).filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float64) / 255
    h, w = 480, 640
    ys, xs = np.mgrid[0:h, 0:w]
    light = 1 - 0.18 * xs / w - 0.10 * ys / h
    page = np.array([236, 228, 205])[None, None, :] * light[..., None] + rng.normal(0, 5, (h, w, 1))
    top, left = 120, 300
    pen = np.array([30, 35, 80])
    region = page[top:top + 260, left:left + 260]
    page[top:top + 260, left:left + 260] = region * (1 - ink[..., None]) + pen * ink[..., None]
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), "RGB")


def number_on_ruled_paper(digits: list[int], rng: np.random.Generator) -> Image.Image:
    """A number written across ruled paper (blue lines, a red margin), the last two digits touching."""
    h, w, size = 300, 120 + 150 * len(digits), 170
    page = np.array([245, 243, 232], dtype=np.float64)[None, None, :] * np.ones((h, w, 1))
    page *= (1 - 0.12 * np.mgrid[0:h, 0:w][1] / w)[..., None]  # light from the left
    for y in range(20, h, 38):
        page[y:y + 2] = page[y:y + 2] * 0.5 + np.array([140, 165, 215]) * 0.5
    page[:, 50:52] = page[:, 50:52] * 0.4 + np.array([225, 80, 80]) * 0.6
    page += rng.normal(0, 3, (h, w, 1))
    pen = np.array([25, 30, 90])
    for i, d in enumerate(digits):
        ink = np.asarray(strokes(d, size, 8).filter(ImageFilter.GaussianBlur(1)), dtype=np.float64)[..., None] / 255
        top, left = 60 + 6 * i, 80 + 140 * i - (25 if i == len(digits) - 1 else 0)
        region = page[top:top + size, left:left + size]
        page[top:top + size, left:left + size] = region * (1 - ink) + pen * ink
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), "RGB")


def rows_on_a_note(rows: list[list[int]], rng: np.random.Generator) -> Image.Image:
    """Numbers on two or more rows of a yellow sticky note, in felt pen, each row a little further right."""
    size, step, gap = 110, 86, 40
    h = 60 + len(rows) * (size + gap)
    w = 80 + max(map(len, rows)) * step + 40 * len(rows) + size
    page = np.array([250, 236, 140], dtype=np.float64)[None, None, :] * np.ones((h, w, 1))
    page *= (1 - 0.1 * np.mgrid[0:h, 0:w][0] / h)[..., None]  # light from the top
    page += rng.normal(0, 3, (h, w, 1))
    pen = np.array([20, 20, 60])
    for r, digits in enumerate(rows):
        for i, d in enumerate(digits):
            ink = np.asarray(strokes(d, size, 7).filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float64)[..., None]
            top, left = 30 + r * (size + gap) + int(rng.integers(-6, 7)), 40 + 40 * r + step * i
            region = page[top:top + size, left:left + size]
            page[top:top + size, left:left + size] = region * (1 - ink / 255) + pen * ink / 255
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), "RGB")


def main() -> None:
    rng = np.random.default_rng(0)
    pen_on_paper(3, rng).save(HERE / "pen-on-paper-3.jpg", quality=85)
    # A drawing app's export: black strokes, the coverage in the alpha channel, no background.
    alpha = strokes(4, 300, 12)
    drawing = Image.merge("RGBA", [Image.new("L", alpha.size, 0)] * 3 + [alpha])
    drawing.save(HERE / "tablet-4.png")
    # Chalk on a board: light on dark, noisy.
    chalk = np.asarray(strokes(1, 200, 10), dtype=np.float64) * 0.8 + 40 + rng.normal(0, 10, (200, 200))
    Image.fromarray(np.clip(chalk, 0, 255).astype(np.uint8)).save(HERE / "chalk-1.png")
    # A thick marker, small and tight-cropped, as a phone screenshot might be.
    Image.fromarray(255 - np.asarray(strokes(8, 64, 8))).save(HERE / "marker-8.png")
    # Blank paper: no digit to read.
    blank = np.clip(np.full((300, 300), 232.0) + rng.normal(0, 3, (300, 300)), 0, 255).astype(np.uint8)
    Image.fromarray(blank).save(HERE / "blank-page.png")
    # A number, as a person photographs one: on ruled paper, its last two digits touching.
    number_on_ruled_paper([2, 0, 2, 4], rng).save(HERE / "number-2024.jpg", quality=85)
    # A letter in pencil on white paper (its own generator: the images above stay as they were).
    letter = np.asarray(strokes(LETTER_A, 160, 7).filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float64)
    paper = 248 - 0.82 * letter + np.random.default_rng(1).normal(0, 2, letter.shape)
    Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).save(HERE / "letter-A.png")
    # Two numbers on two rows of a sticky note (its own generator too).
    rows_on_a_note([[3, 1, 4], [1, 5, 9, 2]], np.random.default_rng(2)).save(HERE / "note-two-rows.jpg", quality=85)


if __name__ == "__main__":
    main()
