"""Whole numbers as people photograph them, for the reader's tests and its hidden evaluation sets.

Two kinds of handwriting: real MNIST test digits placed side by side (each writer's own), and pen strokes drawn
here from a jittered skeleton of each digit. Then gaps from wide to overlapping, a slight tilt, uneven size and
baseline, and paper: plain, tinted and unevenly lit, ruled (with a margin), squared, with a shadow; saved as JPEG.
Also images without any digit: blank, ruled or squared paper, noise, textures.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from mnist_tiny.reader.strokes import STROKES as SKELETONS  # noqa: E402 — one definition with examples/draw.py
from mnist_tiny.reader.strokes import drawn  # noqa: E402


def drawn_digit(digit: int, rng: np.random.Generator, size: int = 112) -> np.ndarray:
    """White strokes on black (size×size, floats in [0, 1]): the skeleton slanted, squeezed and wobbled, drawn
    with a pen of random width, anti-aliased."""
    return drawn(SKELETONS[digit], rng, size)


def _tight_columns(ink: np.ndarray) -> np.ndarray:
    cols = np.flatnonzero(ink.max(0) > 0.1)
    rows = np.flatnonzero(ink.max(1) > 0.1)
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] if len(cols) else ink


def number_strip(glyphs: list[np.ndarray], rng: np.random.Generator, height: int,
                 gaps: tuple[float, float] = (-0.05, 0.5)) -> np.ndarray:
    """Glyphs (white on black, any size) side by side at about `height` px: each scaled ±10%, its baseline
    moved ±6%, the gap between two a random fraction of the height (negative: they overlap and touch)."""
    placed, x, bottom = [], 0, 0
    for glyph in glyphs:
        glyph = _tight_columns(glyph)
        h = height * rng.uniform(0.9, 1.1)
        w = max(2, int(round(glyph.shape[1] * h / glyph.shape[0])))
        img = np.asarray(Image.fromarray((glyph * 255).astype(np.uint8)).resize((w, int(h)), Image.BICUBIC),
                         dtype=np.float64) / 255
        y = int(rng.uniform(-0.06, 0.06) * height)
        if placed:
            x += int(rng.uniform(*gaps) * height)
        placed.append((img, max(0, x), y))
        x = max(0, x) + w
        bottom = max(bottom, img.shape[0] + y)
    pad = int(0.1 * height)
    strip = np.zeros((int(1.3 * height) + 2 * pad, x + 2 * pad))
    for img, left, y in placed:
        top = pad + int(0.1 * height) + y
        region = strip[top:top + img.shape[0], pad + left:pad + left + img.shape[1]]
        np.maximum(region, img[:region.shape[0], :region.shape[1]], out=region)
    return strip


def on_paper(strip: np.ndarray, rng: np.random.Generator, paper: str = "tinted", tilt: float = 4.0,
             shadow: bool = False) -> Image.Image:
    """The strip (white ink on black) as dark ink on a photographed page: tilted by up to `tilt` degrees,
    somewhere on a larger sheet that is tinted and unevenly lit, and ruled, squared or plain."""
    ink = Image.fromarray((strip * 255).astype(np.uint8)).rotate(rng.uniform(-tilt, tilt), Image.BICUBIC,
                                                                  expand=True)
    ink = np.asarray(ink, dtype=np.float64) / 255
    h = int(ink.shape[0] * rng.uniform(1.4, 2.2))
    w = int(ink.shape[1] * rng.uniform(1.15, 1.5))
    page = _paper(h, w, rng, paper, shadow)
    top = int(rng.integers(0, h - ink.shape[0] + 1))
    left = int(rng.integers(0, w - ink.shape[1] + 1))
    pen = np.array([rng.uniform(10, 60), rng.uniform(10, 60), rng.uniform(30, 110)])
    region = page[top:top + ink.shape[0], left:left + ink.shape[1]]
    a = ink[..., None] * rng.uniform(0.85, 1.0)
    page[top:top + ink.shape[0], left:left + ink.shape[1]] = region * (1 - a) + pen * a
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), "RGB")


def _paper(h: int, w: int, rng: np.random.Generator, kind: str, shadow: bool = False) -> np.ndarray:
    colour = np.array([rng.uniform(215, 250), rng.uniform(205, 245), rng.uniform(180, 235)])
    ys, xs = np.mgrid[0:h, 0:w]
    light = 1 - rng.uniform(0, 0.15) * (xs / w) - rng.uniform(0, 0.1) * (ys / h)
    if shadow:  # a soft shadow over one side of the page (a hand, a phone)
        edge = rng.uniform(0.2, 0.5) * w
        light = light * (1 - 0.3 / (1 + np.exp((xs - edge) / (0.04 * w))))
    page = colour[None, None, :] * light[..., None] + rng.normal(0, 3, (h, w, 1))
    line = np.array([150, 170, 215])
    if kind in ("ruled", "squared"):
        spacing = int(rng.uniform(0.08, 0.14) * h) if kind == "ruled" else int(rng.uniform(0.05, 0.08) * h)
        spacing = max(8, spacing)
        offset = int(rng.integers(0, spacing))
        for y in range(offset, h, spacing):
            page[y:y + 2] = page[y:y + 2] * 0.5 + line * 0.5
        if kind == "squared":
            for x in range(offset, w, spacing):
                page[:, x:x + 2] = page[:, x:x + 2] * 0.5 + line * 0.5
        else:
            margin = int(0.08 * w)
            page[:, margin:margin + 2] = page[:, margin:margin + 2] * 0.4 + np.array([220, 90, 90]) * 0.6
    return page


def number_image(digits: list[int], rng: np.random.Generator, mnist_pool: dict[int, list[np.ndarray]] | None,
                 paper: str = "tinted", shadow: bool = False, gaps: tuple[float, float] = (-0.05, 0.5)) -> Image.Image:
    """A number written on paper: MNIST digits from `mnist_pool` (digit → 28×28 uint8 images), else drawn ones."""
    glyphs = _glyphs(digits, rng, mnist_pool)
    height = int(rng.integers(50, 120))
    return on_paper(number_strip(glyphs, rng, height, gaps), rng, paper, shadow=shadow)


def _glyphs(digits: list[int], rng: np.random.Generator, mnist_pool) -> list[np.ndarray]:
    """Each digit in one hand: an MNIST digit from `mnist_pool` (digit → 28×28 uint8 images), else a drawn one."""
    if mnist_pool is not None:
        return [mnist_pool[d][int(rng.integers(len(mnist_pool[d])))] / 255.0 for d in digits]
    return [drawn_digit(d, rng) for d in digits]


def rows_image(rows: list[list[int]], rng: np.random.Generator, mnist_pool: dict[int, list[np.ndarray]] | None,
               paper: str = "tinted", shadow: bool = False, gaps: tuple[float, float] = (0.0, 0.4),
               spacing: tuple[float, float] = (0.35, 1.0)) -> Image.Image:
    """Numbers on several rows of one page, top to bottom: each row a `number_strip` in the same hand and size,
    the rows' left edges a little apart, the space between rows a random fraction (`spacing`) of the height."""
    height = int(rng.integers(40, 90))
    strips = []
    for digits in rows:
        strips.append(_tight_rows(number_strip(_glyphs(digits, rng, mnist_pool), rng, height, gaps)))
    indents = [int(rng.uniform(0, 0.5) * height) for _ in strips]
    gaps_between = [int(rng.uniform(*spacing) * height) for _ in strips[1:]]
    pad = int(0.2 * height)
    h = sum(s.shape[0] for s in strips) + sum(gaps_between) + 2 * pad
    w = max(s.shape[1] + i for s, i in zip(strips, indents)) + 2 * pad
    page = np.zeros((h, w))
    y = pad
    for n, (strip, indent) in enumerate(zip(strips, indents)):
        page[y:y + strip.shape[0], pad + indent:pad + indent + strip.shape[1]] = strip
        y += strip.shape[0] + (gaps_between[n] if n < len(gaps_between) else 0)
    return on_paper(page, rng, paper, tilt=2.0, shadow=shadow)


def _tight_rows(ink: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(ink.max(1) > 0.1)
    return ink[rows[0]:rows[-1] + 1] if len(rows) else ink


def no_digit_images(rng: np.random.Generator) -> dict[str, Image.Image]:
    """Fifteen images with nothing to read: paper of each kind, noise of several kinds, textures."""
    h, w = 360, 480
    ys, xs = np.mgrid[0:h, 0:w]
    grey = lambda a: Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))  # noqa: E731
    return {
        "blank-white": grey(np.full((h, w), 245.0)),
        "blank-tinted": Image.fromarray(np.clip(_paper(h, w, rng, "plain"), 0, 255).astype(np.uint8), "RGB"),
        "ruled": Image.fromarray(np.clip(_paper(h, w, rng, "ruled"), 0, 255).astype(np.uint8), "RGB"),
        "squared": Image.fromarray(np.clip(_paper(h, w, rng, "squared"), 0, 255).astype(np.uint8), "RGB"),
        "ruled-shadow": Image.fromarray(np.clip(_paper(h, w, rng, "ruled", shadow=True), 0, 255).astype(np.uint8),
                                        "RGB"),
        "uniform-noise": grey(rng.uniform(0, 255, (h, w))),
        "gaussian-noise": grey(128 + rng.normal(0, 60, (h, w))),
        "salt-and-pepper": grey(np.where(rng.random((h, w)) < 0.05, 0, 240.0)),
        "blurred-noise": grey(np.asarray(grey(rng.uniform(0, 255, (h, w))).filter(ImageFilter.GaussianBlur(3)),
                                         dtype=np.float64) * 3 - 255),
        "colour-noise": Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB"),
        "stripes": grey(128 + 100 * np.sin(xs / 6.0)),
        "checkerboard": grey(np.where(((xs // 20) + (ys // 20)) % 2 == 0, 30, 225.0)),
        "wood-grain": grey(150 + 60 * np.sin(xs / 9.0 + 4 * np.sin(ys / 40.0)) + rng.normal(0, 10, (h, w))),
        "fabric": grey(128 + 50 * np.sin(xs / 2.5) * np.sin(ys / 2.5) + rng.normal(0, 20, (h, w))),
        "dark-gradient": grey(20 + 200 * xs / w),
    }
