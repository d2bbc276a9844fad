"""Turn the images people actually have into what an MNIST model expects, the way MNIST itself was made.

Steps: to grey in [0, 1] → decide polarity from the border (paper is usually lighter than ink) and make the
digit light on dark → subtract the paper (a plane fitted to the border, so uneven light is flattened) and
stretch the ink to full range → crop to the ink (robust
to specks: the box keeps 99.6% of the ink mass) → scale so the longer side is 20 px, keeping the aspect ratio →
paste into 28×28 with the centre of mass at the centre.
"""

from __future__ import annotations

import functools
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_tiny.errors import UserError, read_pipe, require_file

# Refuse images above this many pixels before decoding them (Pillow's decompression-bomb guard).
MAX_PIXELS = 40_000_000
# Work on at most this many pixels per side; a digit needs far fewer, and it keeps huge photos cheap.
WORK_SIZE = 512
# What a pipe (`predict <(cat img.png)`) may send.
MAX_PIPE_BYTES = 64 << 20


# The formats the reader opens, and no other: Pillow's other plugins include EPS (which runs Ghostscript on the
# file) and rarely used decoders whose failures are their own; a file names its format, so it cannot choose one.
FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "TIFF", "PPM")  # JPEG covers MPO (phones)
FORMAT_NAMES = "PNG, JPEG, BMP, GIF, WebP, TIFF, PNM"
# A progressive JPEG decodes every scan over the whole image: a photo has about ten; a file with thousands is
# a way to spend minutes of CPU on a kilobyte upload. Cost = pixels × scans, bounded here before decoding.
MAX_SCANS = 100
MAX_SCAN_COST = 10 * MAX_PIXELS


class PixelBudget:
    """Pixels that one call (a server request) may still decode; every image spends its cost before decoding, so a
    request over budget is refused before the work is done, not after."""

    def __init__(self, pixels: int):
        self.left = pixels

    def spend(self, cost: int, label: str) -> None:
        if cost > self.left:
            raise UserError(f"{label}: refused, too large for what is left of this request's budget "
                            f"({cost:,} pixels to decode, {max(self.left, 0):,} left)")
        self.left -= cost


def load_image(path: Path, with_size: bool = False):
    """Decode an image file (or a pipe) to a 2-d float array in [0, 1] (dark = 0); every failure is a UserError
    naming it. `with_size`: also the image's (width, height) as stored, for boxes in its own pixels."""
    path = Path(path)
    kind = require_file(path, str(path), pipes=True)
    source = io.BytesIO(read_pipe(path, str(path), MAX_PIPE_BYTES)) if kind == "pipe" else path
    return decode_image(source, str(path), with_size)


def decode_image(source, label: str, with_size: bool = False, budget: PixelBudget | None = None):
    """`load_image` for a path or a binary file object (an upload): the same limits, the same errors. Whatever a
    decoder raises on a broken file is this file's error and no one else's."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    _register_formats()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a file's hundred thousand bad EXIF tags are not a log's business
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=FORMATS) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise UserError(f"{label}: {image.width}×{image.height} pixels is too large "
                                    f"(limit {MAX_PIXELS:,} pixels)")
                scans = _jpeg_scans(image) if image.format in ("JPEG", "MPO") else 1
                if scans > MAX_SCANS or image.width * image.height * scans > MAX_SCAN_COST:
                    raise UserError(f"{label}: refused, a JPEG of {scans:,} scans (a photo has about 10; "
                                    f"limit {MAX_SCANS})")
                image.seek(0)  # animated GIF/WebP: the first frame
                stored = image.size
                image.draft("L", (WORK_SIZE, WORK_SIZE))  # JPEG: decode at reduced size directly
                if budget is not None:
                    budget.spend(image.width * image.height * scans, label)
                image.load()
                # The orientation only now: a PNG's getexif() decodes the whole image to look for an eXIf chunk
                # after the pixels, which would come before the budget is spent.
                size = stored if image.getexif().get(0x0112, 1) < 5 else stored[::-1]  # as it is shown
                ImageOps.exif_transpose(image, in_place=True)  # a copy would double the peak on a big photo
                grey = to_grey(image)
                return (grey, size) if with_size else grey
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UserError(f"{label}: refused, image too large ({e})") from None
    except UnidentifiedImageError:
        raise UserError(f"{label}: not an image in a format the reader opens ({FORMAT_NAMES})") from None
    except MemoryError:
        raise UserError(f"{label}: refused, decoding it needs more memory than there is") from None
    except Exception as e:  # noqa: BLE001 — a decoder's own exception types (struct.error, IndexError, …) too
        raise UserError(f"{label}: cannot decode image ({_short(e)})") from None


def header_cost(data: bytes) -> int | None:
    """What decoding `data` would cost, in pixels × JPEG scans (as PixelBudget counts it), from its header alone
    (tens of µs: nothing is decoded; a PNG's from its first chunk, 1 µs); None when the header does not open (the
    decode will say why)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        return width * height if width and height else None  # what Pillow reads there too
    _register_formats()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                scans = _jpeg_scans(image) if image.format in ("JPEG", "MPO") else 1
                return image.width * image.height * scans
    except Exception:  # noqa: BLE001 — any decoder's complaint: not a cost this header can tell
        return None


def _register_formats() -> None:
    """Load the plugins of FORMATS alone (Pillow loads the others only through Image.init, never called here)."""
    from PIL import BmpImagePlugin, GifImagePlugin, JpegImagePlugin, MpoImagePlugin, PngImagePlugin  # noqa: F401
    from PIL import PpmImagePlugin, TiffImagePlugin, WebPImagePlugin  # noqa: F401


def _short(e: Exception) -> str:
    text = " ".join(str(e).split())[:160]
    return text or type(e).__name__


def _jpeg_scans(image: Image.Image) -> int:
    """How many scans (SOS markers) a JPEG holds. In entropy-coded data every 0xFF byte is followed by 0x00 or a
    restart marker, so each FF DA in the file is a scan header; counted in chunks, at most the file once."""
    fp = image.fp
    where = fp.tell()
    try:
        fp.seek(0)
        count, tail = 0, b""
        while chunk := fp.read(1 << 20):
            data = tail + chunk
            count += data.count(b"\xff\xda")
            tail = data[-1:] if data[-1:] == b"\xff" else b""
            if count > MAX_SCANS:
                break
        return max(count, 1)
    finally:
        fp.seek(where)


def to_grey(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → float grey in [0, 1], at most WORK_SIZE per side; transparency is flattened onto paper
    that contrasts the ink. A large image is converted and shrunk a band of rows at a time, so besides the
    decoded image no full-size copy exists (a 6300×6300 photo is never floats at full size)."""
    transparent = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info)
    if transparent:
        # Premultiplied while shrinking, so the colour under transparent pixels does not bleed into the ink; an
        # image that needs no shrinking skips the round trip (0.3 ms of a 300-px drawing's read).
        rgba = _reduce(image, "RGBa").convert("RGBA") if _factor(image) >= 2 else _convert(image, "RGBA")
        opacity = rgba.getchannel("A")
        if opacity.getextrema()[0] == 255:
            return _shrink(np.asarray(rgba.convert("L"), dtype=np.float32) / 255)
        return _shrink(_flatten_box(rgba, opacity))
    if image.mode in ("I", "F", "I;16", "I;16B", "I;16L", "I;16N"):
        array = np.asarray(_reduce(image, "F"), dtype=np.float32)
        finite = np.isfinite(array)  # a float TIFF's NaN or inf pixel is a hole, not the image's range
        if not finite.any():
            return _shrink(np.zeros_like(array))
        low, high = float(array[finite].min()), float(array[finite].max())
        if not finite.all():
            array = np.where(finite, array, float(np.median(array[finite])))  # holes as paper (the majority)
        return _shrink((array - low) / (high - low) if high > low else np.zeros_like(array))
    return _shrink(np.asarray(_reduce(image, "L"), dtype=np.float32) / 255)


BAND = 64  # rows of the shrunk image converted at a time


def _factor(image: Image.Image) -> int:
    """The whole factor `_reduce` shrinks by (under 2: it does not)."""
    return max(image.size) // WORK_SIZE


def _reduce(image: Image.Image, mode: str) -> Image.Image:
    """`image` in `mode`, shrunk by a whole factor (box filter) to under twice WORK_SIZE per side."""
    factor = _factor(image)
    if factor < 2:
        return _convert(image, mode)
    w, h = image.size
    out = Image.new(mode, (-(-w // factor), -(-h // factor)))
    for top in range(0, h, BAND * factor):
        band = image.crop((0, top, w, min(h, top + BAND * factor)))
        out.paste(_convert(band, mode).reduce(factor), (0, top // factor))
    return out


def _convert(image: Image.Image, mode: str) -> Image.Image:
    if image.mode == mode:
        return image
    if mode == "RGBa":  # Pillow reaches premultiplied alpha only from RGBA
        return _convert(image, "RGBA").convert("RGBa")
    if mode == "F" and image.mode.startswith("I;16"):
        return image.convert("I").convert("F")
    return image.convert(mode)


def _flatten_box(rgba: Image.Image, opacity: Image.Image) -> np.ndarray:
    """`_flatten` where any pixel has some opacity (and one more pixel around: the rim is found against it);
    beyond that box it would give the paper alone (a drawing app's export is mostly transparent: the 300-px
    tablet drawing's conversion to grey 480 → 410 µs, bit for bit the same)."""
    w, h = rgba.size
    box = opacity.getbbox()
    if box is None:  # nothing drawn: white paper, as `_flatten` makes it
        return np.ones((h, w), dtype=np.float32)
    left, top, right, bottom = max(box[0] - 1, 0), max(box[1] - 1, 0), min(box[2] + 1, w), min(box[3] + 1, h)
    crop = rgba.crop((left, top, right, bottom))
    alpha = np.asarray(crop.getchannel("A"), dtype=np.float32) / 255
    grey = np.asarray(crop.convert("L"), dtype=np.float32) / 255
    flat, paper = _flatten(grey, alpha)
    out = np.full((h, w), paper, dtype=np.float32)
    out[top:bottom, left:right] = flat
    return out


def _flatten(grey: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, float]:
    """Put the opaque part on paper: white under dark ink, black under light ink.

    Where only the paper's exact colour was keyed transparent, the anti-aliased halo around the strokes stays
    opaque and shades from the ink towards the paper: the rim of the opaque region is then paper-coloured
    compared with its inside, and that says which paper it was. Where the ink has one colour and the alpha
    channel carries its coverage (a drawing app's export), rim and inside agree and the ink's own colour decides."""
    opaque = alpha > 0.5
    inside = opaque.copy()
    inside[1:] &= opaque[:-1]
    inside[:-1] &= opaque[1:]
    inside[:, 1:] &= opaque[:, :-1]
    inside[:, :-1] &= opaque[:, 1:]
    rim = opaque & ~inside
    lighter_rim = float(grey[rim].mean()) - float(grey[inside].mean()) if inside.any() and rim.any() else 0.0
    if abs(lighter_rim) > 0.1:
        paper = 1.0 if lighter_rim > 0 else 0.0
    else:
        weight = alpha * alpha
        weight *= weight  # alpha⁴ (numpy's ** 4 is 40× slower): the most opaque pixels are the ink
        total = weight.sum()
        ink = float((grey * weight).sum() / total) if total > 0 else 0.0
        paper = 1.0 if ink < 0.5 else 0.0
    return (grey * alpha + (1 - alpha) if paper else grey * alpha), paper  # = grey·alpha + paper·(1 - alpha)


def _shrink(grey: np.ndarray) -> np.ndarray:
    return grey if max(grey.shape) <= WORK_SIZE else shrink_to(grey, WORK_SIZE)


def shrink_to(grey: np.ndarray, side: int) -> np.ndarray:
    """`grey` resampled (area) so that its longer side is `side`, the aspect kept."""
    h, w = grey.shape
    size = (max(1, round(h * side / max(h, w))), max(1, round(w * side / max(h, w))))
    return resize_area(np.asarray(grey, dtype=np.float32), size)


def preprocess(image):
    """An image (PIL image, path, or 2-d array of any numeric dtype) → a 1×28×28 float tensor in [0, 1].

    Never fails on odd content: a blank or constant image becomes all zeros. (`to_mnist` is the same as a numpy
    array, without torch.)
    """
    import torch

    return torch.from_numpy(to_mnist(image)).unsqueeze(0)


def to_mnist(image) -> np.ndarray:
    """`preprocess` in numpy: a 28×28 float32 array in [0, 1], light digit on dark, as MNIST stores digits."""
    if isinstance(image, (str, Path)):
        grey = load_image(Path(image))
    elif isinstance(image, Image.Image):
        grey = to_grey(image)
    else:
        grey = _normalise_array(np.asarray(image))
    return _mnist_like(grey).astype(np.float32)


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
    ink = paper_to_ink(grey)
    return np.zeros((28, 28), dtype=np.float32) if ink is None else centre_digit(ink)


def paper_to_ink(grey: np.ndarray) -> np.ndarray | None:
    """Grey in [0, 1] → ink in [0, 1] on a zero background (light on dark, as MNIST stores digits), or None for an
    image without contrast (blank paper)."""
    grey = np.clip(grey, 0, 1)  # ±inf to 1 and 0 as they are; NaN stays NaN, and is paper (0) below
    if np.isnan(grey).any():
        grey = np.nan_to_num(grey, nan=0.0)
    h, w = grey.shape
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if float(np.median(border)) > 0.5:  # dark ink on light paper → light ink on dark, as MNIST stores digits
        grey = 1 - grey
    # Paper under uneven light is a slope, not a level: fit a plane to the border and subtract it; a shadow is
    # not a plane, so on a large enough image the paper's own local level is subtracted as well.
    ink = grey - _border_plane(grey)
    ink = ink - _local_paper(ink)
    ink_level = float(box_mean_3x3(ink).max()) if min(h, w) >= 3 else float(ink.max())
    if ink_level < 0.1:
        return None  # no contrast: blank paper
    # Ink → 1; a margin above the paper level removes its texture and JPEG noise.
    return np.clip((ink / ink_level - 0.25) / 0.75, 0, 1)


def centre_digit(ink: np.ndarray) -> np.ndarray:
    """Ink holding one digit → MNIST's 28×28: crop to the ink, longer side 20 px, centre of mass at the centre."""
    box = _ink_box(ink)
    if box is None:
        return np.zeros((28, 28), dtype=np.float32)
    top, bottom, left, right = box
    digit = ink[top:bottom, left:right]

    dh, dw = digit.shape
    scale = 20 / max(dh, dw)
    size = (max(1, round(dh * scale)), max(1, round(dw * scale)))
    digit = digit.astype(np.float32)
    small = resize_area(digit, size) if scale < 1 else resize_bilinear(digit, size)
    small = np.clip(small, 0, 1)
    if small.max() > 0:
        small = small / small.max()  # thin strokes shrink to grey; MNIST strokes peak at full intensity

    canvas = np.zeros((28, 28), dtype=np.float32)
    total = float(small.sum())
    if total > 0:  # the centre of mass, from the row and column profiles
        cy = float(small.sum(1) @ np.arange(size[0], dtype=np.float32)) / total
        cx = float(small.sum(0) @ np.arange(size[1], dtype=np.float32)) / total
    else:
        cy, cx = size[0] / 2, size[1] / 2
    top = min(max(round(14 - cy - 0.5), 0), 28 - size[0])  # plain Python: np.clip on a number costs 7 µs
    left = min(max(round(14 - cx - 0.5), 0), 28 - size[1])
    canvas[top:top + size[0], left:left + size[1]] = small
    return canvas


def _local_paper(ink: np.ndarray) -> np.ndarray | float:
    """What is left of the paper after the plane (a shadow is not a plane): in cells of an eighth of the
    image, the 20th percentile (ink is the bright minority, so this is paper), averaged over each 3×3 block of
    cells (those a stroke fills left out), kept where above zero, bilinear between cell centres. 0 on images
    under 96 pixels a side, where a digit fills most cells."""
    h, w = ink.shape
    if min(h, w) < 96:
        return 0.0
    cell = max(12, min(h, w) // 8)
    gh, gw = -(-h // cell), -(-w // cell)
    padded = ink if (gh * cell, gw * cell) == (h, w) else \
        np.pad(ink, ((0, gh * cell - h), (0, gw * cell - w)), mode="edge")
    cells = _percentile_20(padded.reshape(gh, cell, gw, cell).transpose(0, 2, 1, 3).reshape(gh, gw, -1))
    # A cell at over half the ink's peak is filled by a stroke (a marker's, on a digit that fills the image), not
    # paper in shadow (a shadow dims paper by a third at most): it takes the paper level around it instead, else
    # the stroke's own middle would be taken for paper and only its edges read.
    paper = cells <= 0.5 * float(ink.max())
    if not paper.any() or float(cells[paper].max()) < 0.03:  # each level is a mean (or median) of these
        return 0.0
    fill = float(np.median(cells[paper]))
    values, weights = np.pad(np.where(paper, cells, 0), 1, mode="edge"), np.pad(paper.astype(float), 1, mode="edge")
    total = sum(values[dy:dy + gh, dx:dx + gw] for dy in range(3) for dx in range(3))
    count = sum(weights[dy:dy + gh, dx:dx + gw] for dy in range(3) for dx in range(3))
    level = np.maximum(np.where(count > 0, total / np.maximum(count, 1), fill), 0)
    if level.max() < 0.03:
        return 0.0
    return resize_bilinear(level.astype(np.float32), (gh * cell, gw * cell))[:h, :w]


def _percentile_20(values: np.ndarray) -> np.ndarray:
    """np.percentile(values, 20, axis=-1) (linear between the neighbouring ranks) by one partial sort: 35 against
    115 µs on the 8×8 cells of `_local_paper`."""
    position = 0.2 * (values.shape[-1] - 1)
    low = int(position)
    high = min(low + 1, values.shape[-1] - 1)
    ranked = np.partition(values, (low, high) if high > low else low, axis=-1)
    below, above = ranked[..., low], ranked[..., high]
    return below + (above - below) * (position - low)


def _border_plane(grey: np.ndarray) -> np.ndarray:
    """Least-squares plane a + b·x + c·y through the border pixels (where the paper is)."""
    h, w = grey.shape
    if min(h, w) < 3:  # a line or two of pixels: the plane may be underdetermined, lstsq takes the least norm
        edge = np.zeros((h, w), dtype=bool)
        edge[[0, -1], :] = edge[:, [0, -1]] = True
        ys, xs = np.nonzero(edge)
        design = np.stack([np.ones(len(xs)), xs / max(1, w - 1), ys / max(1, h - 1)], 1)
        coef, *_ = np.linalg.lstsq(design, grey[edge], rcond=None)
    else:
        coef = _plane_solver(h, w) @ np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    return coef[0] + np.arange(w)[None, :] * (coef[1] / max(1, w - 1)) + np.arange(h)[:, None] * (coef[2] / max(1, h - 1))


@functools.lru_cache(maxsize=32)  # 3 × (2h + 2w) floats each; a few sizes in practice
def _plane_solver(h: int, w: int) -> np.ndarray:
    """The least-squares solution as a matrix, (DDᵀ)⁻¹D for the border's design D (1, x, y: rows 0 and h-1, then
    columns 0 and w-1 between them), which depends on the size alone: 135-165 → 24 µs a plane, against lstsq's SVD."""
    inner = np.arange(1, h - 1) / (h - 1)
    across = np.arange(w) / (w - 1)
    xs = np.concatenate([across, across, np.zeros(h - 2), np.ones(h - 2)])
    ys = np.concatenate([np.zeros(w), np.ones(w), inner, inner])
    design = np.stack([np.ones(len(xs)), xs, ys])
    solver = np.linalg.solve(design @ design.T, design)
    solver.flags.writeable = False
    return solver


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


# The resampling torch's F.interpolate does ("area" = adaptive average pooling; bilinear without aligned corners)
# and F.avg_pool2d(3, 1, 1), in numpy, so reading a digit needs no torch (tests compare them with torch's).

def resize_area(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Each output pixel the mean of the input cells its window covers: rows floor(i·H/h) .. ceil((i+1)·H/h)."""
    return _area_axis(_area_axis(a, size[0], 0), size[1], 1)


def _area_axis(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    m = a.shape[axis]
    if n == m:
        return a
    if n <= SMALL_AREA and m <= 4 * WORK_SIZE and m >= SHIFTED_FROM:  # the scout of a larger image
        return _area_shifted(a, n, axis)
    if n <= SMALL_AREA and m <= 4 * WORK_SIZE:  # a small output (a digit's 20 px): one matrix product
        weights = _area_weights(m, n)
        return (weights @ a if axis == 0 else a @ weights.T).astype(np.float32, copy=False)
    start, stop = _windows(m, n)
    total = np.cumsum(a, axis=axis, dtype=np.float64)
    total = np.concatenate([np.zeros_like(np.take(total, [0], axis=axis)), total], axis=axis)
    sums = np.take(total, stop, axis=axis) - np.take(total, start, axis=axis)
    shape = [1, 1]
    shape[axis] = n
    return (sums / (stop - start).reshape(shape)).astype(np.float32)


# Up to this many output pixels an axis is resampled as a product with its window matrix (n×m), 4-10× faster than
# the cumulative sums on these cores; it needs BLAS on one thread (cli.app.main, embed.worker: a second would wait
# for a core that the other server worker holds). Larger outputs (the working size) keep the sums: no n×m matrix.
SMALL_AREA = 128


# From this many input pixels on, a small output is the sum of a few shifted, weighted copies of the input (the
# window's width: 3-7 taps for the scout) instead of the product with the mostly-zero window matrix: 2× faster
# from 200 px (300 → 96: 274 → 125 µs), slower for a digit's few dozen pixels.
SHIFTED_FROM = 128


def _area_shifted(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    index, weight = _area_taps(a.shape[axis], n)
    if axis == 0:
        out = a[index[0]] * weight[0][:, None]
        for k in range(1, len(index)):
            out += a[index[k]] * weight[k][:, None]
    else:
        out = a[:, index[0]] * weight[0]
        for k in range(1, len(index)):
            out += a[:, index[k]] * weight[k]
    return out.astype(np.float32, copy=False)


@functools.lru_cache(maxsize=32)
def _area_taps(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tap k of every output pixel's window: the input pixel start + k and its weight (0 past the window's end)."""
    start, stop = _windows(m, n)
    at = start[None, :] + np.arange(int((stop - start).max()))[:, None]
    weight = ((at < stop[None, :]) / (stop - start)[None, :]).astype(np.float32)
    index = np.minimum(at, m - 1)
    index.flags.writeable = weight.flags.writeable = False
    return index, weight


@functools.lru_cache(maxsize=32)  # ≤ 128 × 2048 float32 each: at most 32 MB, in practice a few sizes
def _area_weights(m: int, n: int) -> np.ndarray:
    start, stop = _windows(m, n)
    cols = np.arange(m)
    inside = (cols >= start[:, None]) & (cols < stop[:, None])
    weights = (inside / (stop - start)[:, None]).astype(np.float32)
    weights.flags.writeable = False
    return weights


def _windows(m: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each of n output pixels' windows over m input pixels starts and stops: floor(i·m/n) .. ceil((i+1)·m/n)."""
    i = np.arange(n)
    return (i * m) // n, -((-(i + 1) * m) // n)


def resize_bilinear(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling with half-pixel centres (torch's align_corners=False)."""
    return _bilinear_axis(_bilinear_axis(a, size[0], 0), size[1], 1)


def _bilinear_axis(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    m = a.shape[axis]
    if n == m:
        return a
    src = np.maximum((np.arange(n) + 0.5) * (m / n) - 0.5, 0)
    low = np.minimum(np.floor(src).astype(np.int64), m - 1)
    high = np.minimum(low + 1, m - 1)
    weight = (src - low).astype(np.float32)
    shape = [1, 1]
    shape[axis] = n
    weight = weight.reshape(shape)
    return (np.take(a, low, axis=axis) * (1 - weight) + np.take(a, high, axis=axis) * weight).astype(np.float32)


def box_mean_3x3(a: np.ndarray) -> np.ndarray:
    """The mean over each 3×3 neighbourhood, zeros outside (torch's avg_pool2d(3, 1, 1))."""
    h, w = a.shape
    padded = np.zeros((h + 2, w + 2), dtype=a.dtype)  # np.pad does the same at 1.4-2.7× the time
    padded[1:-1, 1:-1] = a
    rows = padded[:-2] + padded[1:-1]  # separable: 4 additions, not 8, in place where they can be
    rows += padded[2:]
    out = rows[:, :-2] + rows[:, 1:-1]
    out += rows[:, 2:]
    out /= 9
    return out
