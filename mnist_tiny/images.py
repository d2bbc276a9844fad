"""Turn the images people actually have into what an MNIST model expects, the way MNIST itself was made.

Steps: to grey in [0, 1] → decide polarity from the border (paper is usually lighter than ink) and make the
digit light on dark → subtract the paper (a plane fitted to the border, so uneven light is flattened) and
stretch the ink to full range → crop to the ink (robust
to specks: the box keeps 99.6% of the ink mass) → scale so the longer side is 20 px, keeping the aspect ratio →
paste into 28×28 with the centre of mass at the centre.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError, require_nonempty_file

# Refuse images above this many pixels before decoding them (Pillow's decompression-bomb guard).
MAX_PIXELS = 40_000_000
# Work on at most this many pixels per side; a digit needs far fewer, and it keeps huge photos cheap.
WORK_SIZE = 512


def load_image(path: Path) -> np.ndarray:
    """Decode an image file to a 2-d float array in [0, 1] (dark = 0); every failure is a UserError naming it."""
    path = require_nonempty_file(path, str(path))
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise UserError(f"{path}: {image.width}×{image.height} pixels is too large "
                                    f"(limit {MAX_PIXELS:,} pixels)")
                image.seek(0)  # animated GIF/WebP: the first frame
                image.draft("L", (WORK_SIZE, WORK_SIZE))  # JPEG: decode at reduced size directly
                image = ImageOps.exif_transpose(image)
                return to_grey(image)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UserError(f"{path}: refused, image too large ({e})") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UserError(f"{path}: cannot decode image ({e})") from None


def to_grey(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → float grey in [0, 1]; transparency is flattened onto a background that contrasts the ink."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        grey = (array - low) / (high - low) if high > low else np.zeros_like(array)
        return _shrink(grey)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255
        grey = np.asarray(rgba.convert("L"), dtype=np.float64) / 255
        if alpha.min() < 1:
            # Ink is the opaque part: put it on white paper if it is dark, on black if it is light.
            ink = grey[alpha > 0.5]
            paper = 1.0 if ink.size == 0 or ink.mean() < 0.5 else 0.0
            grey = grey * alpha + paper * (1 - alpha)
        return _shrink(grey)
    return _shrink(np.asarray(image.convert("L"), dtype=np.float64) / 255)


def _shrink(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape
    if max(h, w) <= WORK_SIZE:
        return grey
    t = torch.from_numpy(grey).float()[None, None]
    size = (max(1, round(h * WORK_SIZE / max(h, w))), max(1, round(w * WORK_SIZE / max(h, w))))
    return F.interpolate(t, size=size, mode="area")[0, 0].double().numpy()


def preprocess(image) -> torch.Tensor:
    """An image (PIL image, path, or 2-d array of any numeric dtype) → a 1×28×28 float tensor in [0, 1].

    Never fails on odd content: a blank or constant image becomes all zeros.
    """
    if isinstance(image, (str, Path)):
        grey = load_image(Path(image))
    elif isinstance(image, Image.Image):
        grey = to_grey(image)
    else:
        grey = _normalise_array(np.asarray(image))
    return torch.from_numpy(_mnist_like(grey)).float().unsqueeze(0)


def _normalise_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3:  # H×W×C colour: average the channels
        array = array[..., :3].mean(axis=2) if array.shape[2] > 1 else array[..., 0]
    array = np.nan_to_num(np.asarray(array, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if array.ndim != 2 or array.size == 0:
        return np.zeros((28, 28))
    low, high = float(array.min()), float(array.max())
    if not np.isfinite(high - low) or high - low <= 0:
        return np.zeros_like(array)
    return (array - low) / (high - low)


def _mnist_like(grey: np.ndarray) -> np.ndarray:
    grey = np.clip(np.nan_to_num(grey, nan=0.0), 0, 1)
    h, w = grey.shape
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if float(np.median(border)) > 0.5:  # dark ink on light paper → light ink on dark, as MNIST stores digits
        grey = 1 - grey
    # Paper under uneven light is a slope, not a level: fit a plane to the border and subtract it.
    ink = grey - _border_plane(grey)
    ink_level = float(F.avg_pool2d(torch.from_numpy(ink)[None, None], 3, 1, 1).max()) if min(h, w) >= 3 else ink.max()
    if ink_level < 0.1:
        return np.zeros((28, 28), dtype=np.float32)  # no contrast: blank paper
    # Ink → 1; a margin above the paper level removes its texture and JPEG noise.
    ink = np.clip((ink / ink_level - 0.25) / 0.75, 0, 1)
    box = _ink_box(ink)
    if box is None:
        return np.zeros((28, 28), dtype=np.float32)
    top, bottom, left, right = box
    digit = ink[top:bottom, left:right]

    dh, dw = digit.shape
    scale = 20 / max(dh, dw)
    size = (max(1, round(dh * scale)), max(1, round(dw * scale)))
    t = torch.from_numpy(digit).float()[None, None]
    mode = "area" if scale < 1 else "bilinear"
    small = F.interpolate(t, size=size, mode=mode, **({} if mode == "area" else {"align_corners": False}))[0, 0]
    small = small.clamp(0, 1).numpy()
    if small.max() > 0:
        small = small / small.max()  # thin strokes shrink to grey; MNIST strokes peak at full intensity

    canvas = np.zeros((28, 28), dtype=np.float32)
    total = small.sum()
    ys, xs = np.indices(small.shape)
    cy, cx = ((ys * small).sum() / total, (xs * small).sum() / total) if total > 0 else (size[0] / 2, size[1] / 2)
    top = int(np.clip(round(14 - cy - 0.5), 0, 28 - size[0]))
    left = int(np.clip(round(14 - cx - 0.5), 0, 28 - size[1]))
    canvas[top:top + size[0], left:left + size[1]] = small
    return canvas


def _border_plane(grey: np.ndarray) -> np.ndarray:
    """Least-squares plane a + b·x + c·y through the border pixels (where the paper is)."""
    h, w = grey.shape
    ys, xs = np.mgrid[0:h, 0:w]
    edge = np.zeros((h, w), dtype=bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    design = np.stack([np.ones(edge.sum()), xs[edge] / max(1, w - 1), ys[edge] / max(1, h - 1)], 1)
    coef, *_ = np.linalg.lstsq(design, grey[edge], rcond=None)
    return coef[0] + coef[1] * xs / max(1, w - 1) + coef[2] * ys / max(1, h - 1)


def _ink_box(ink: np.ndarray, keep: float = 0.996) -> tuple[int, int, int, int] | None:
    """Bounding box of the ink, trimming the faint tails of the row/column mass (specks, paper edges)."""
    total = ink.sum()
    if total <= 0:
        return None
    cut = (1 - keep) / 2

    def span(profile: np.ndarray) -> tuple[int, int]:
        cumulative = np.cumsum(profile) / total
        start = int(np.searchsorted(cumulative, cut, side="right"))
        end = int(np.searchsorted(cumulative, 1 - cut, side="left")) + 1
        return start, max(end, start + 1)

    top, bottom = span(ink.sum(1))
    left, right = span(ink.sum(0))
    return top, bottom, left, right
