"""Images people have, made from MNIST test digits: plain PNGs and photo-like scans (for tests and the judge set)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def photo_like_scan(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Dark ink on tinted, unevenly lit paper; big canvas; off-centre; RGB (save it as JPEG for artefacts)."""
    scale = int(rng.integers(5, 12))
    ink = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.BICUBIC)
    ink = np.asarray(ink, dtype=np.float64) / 255
    height, width = int(rng.integers(400, 900)), int(rng.integers(400, 900))
    paper = np.array([rng.uniform(200, 245), rng.uniform(190, 240), rng.uniform(160, 225)])
    ys, xs = np.mgrid[0:height, 0:width]
    light = 1 - 0.12 * (xs / width) - 0.08 * (ys / height)  # a lighting gradient across the page
    canvas = paper[None, None, :] * light[..., None] + rng.normal(0, 4, (height, width, 1))
    top = int(rng.integers(0, height - ink.shape[0])) if height > ink.shape[0] else 0
    left = int(rng.integers(0, width - ink.shape[1])) if width > ink.shape[1] else 0
    pen = np.array([rng.uniform(10, 50), rng.uniform(10, 50), rng.uniform(30, 90)])
    region = canvas[top:top + ink.shape[0], left:left + ink.shape[1]]
    alpha = ink[: region.shape[0], : region.shape[1], None]
    canvas[top:top + ink.shape[0], left:left + ink.shape[1]] = region * (1 - alpha) + pen * alpha
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")
