"""Generated examples for the reader's gate (`reader.gate`): whole small images of one mark each, on paper, turned
into what the gate sees at reading time (the 28×28 crop and its box's features) by the reader's own steps.

Classes (`gate.CLASSES`): a handwritten digit (MNIST *training* digits, thickened or thinned, any size, either
polarity; and digits drawn stroke by stroke, `reader.strokes`), a letter or symbol (system fonts, handwriting fonts
included: Debian's fonts-* packages; and letters drawn stroke by stroke), a dot, a
scribble or shape, a picture (Fashion-MNIST's training images, Debian's `dataset-fashion-mnist`, and noise).
Letters that a hand writes like a digit (O, I, l, S, Z, B, g, q, b, …) are left out of every class: no one can
tell them apart from the digit without context.

Training and validation never share a source: validation draws MNIST training digits 55,000–59,999 (training
0–54,999), Fashion-MNIST's images 55,000–59,999, other seeds and other fonts (`VALIDATION_FONTS`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from mnist_tiny.reader.gate import CLASSES, features
from mnist_tiny.reader.images import centre_digit

LETTERS = "ACDEFHJKLMNPRUVWXYacdefhkmnprtuvwxy"
SYMBOLS = "+=?!#@&%$*<>{}~€£÷×§¶©®™^"
FONT_DIRS = ("/usr/share/fonts",)
DRAWN_SHARE = 0.3  # of the digits: drawn stroke by stroke (`reader.strokes`), the rest MNIST's, reshaped
VALIDATION_FONTS = ("Breip", "Humor-Sans", "dkg.ttf", "LiberationSerif-Regular", "ComicNeue-Regular",
                    "BecauseWeConnect")
FASHION = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def fonts(validation: bool) -> list[str]:
    found = sorted(str(p) for d in FONT_DIRS for p in Path(d).rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    if not found:
        raise SystemExit("no fonts under /usr/share/fonts: apt-get install fonts-dejavu-core fonts-liberation "
                         "fonts-breip fonts-humor-sans fonts-dkg-handwriting fonts-comic-neue fonts-bwht")
    held = [f for f in found if any(v in f for v in VALIDATION_FONTS)]
    return held if validation else [f for f in found if f not in held]


def fashion_images() -> np.ndarray:
    with gzip.open(FASHION, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)


def _glyph(rng, font_files) -> np.ndarray:
    if rng.random() < 0.35:  # drawn by a hand, stroke by stroke, any pen
        from mnist_tiny.reader.strokes import LETTERS as HANDWRITTEN, drawn

        lines = HANDWRITTEN[rng.choice(sorted(HANDWRITTEN))]
        return drawn(lines, rng, int(rng.integers(40, 140)), (2, 24)).astype(np.float32)
    text = rng.choice(list(LETTERS + SYMBOLS))
    size = int(rng.integers(28, 110))
    font = ImageFont.truetype(str(rng.choice(font_files)), size)
    canvas = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(canvas).text((size // 2, size // 3), text, fill=255, font=font)
    if rng.random() < 0.4:
        canvas = canvas.filter(ImageFilter.MaxFilter(3))  # a bolder pen
    return np.asarray(canvas, np.float32) / 255


def _dot(rng) -> np.ndarray:
    r = int(rng.integers(2, 40))
    pad = r + 4
    canvas = Image.new("L", (2 * pad, 2 * pad), 0)
    squash = rng.uniform(0.6, 1.0)
    ImageDraw.Draw(canvas).ellipse((pad - r, pad - r * squash, pad + r, pad + r * squash), fill=255)
    return np.asarray(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5))), np.float32) / 255


def _scribble(rng) -> np.ndarray:
    size = int(rng.integers(40, 140))
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    width = int(rng.integers(2, max(3, size // 12)))
    kind = rng.random()
    if kind < 0.55:  # a scribble: a smooth random walk that turns a lot
        steps = int(rng.integers(12, 60))
        angle, point, points = rng.uniform(0, 6.3), np.array([size / 2, size / 2]), []
        for _ in range(steps):
            angle += rng.normal(0, 0.9)
            point = np.clip(point + size / 14 * np.array([np.cos(angle), np.sin(angle)]), 4, size - 4)
            points.append(tuple(point))
        draw.line(points, fill=255, width=width, joint="curve")
    elif kind < 0.8:  # a shape's outline: triangle, square, star, zigzag
        n = int(rng.choice([3, 4, 5, 10, 6]))
        angles = np.sort(rng.uniform(0, 6.28, n)) if rng.random() < 0.3 else np.linspace(0, 6.28, n, endpoint=False)
        radius = np.where(np.arange(n) % 2 == 1, 0.45, 1.0) if n == 10 else np.ones(n)
        points = [(size / 2 + 0.42 * size * r * np.cos(a), size / 2 + 0.42 * size * r * np.sin(a))
                  for a, r in zip(angles, radius)]
        draw.line(points + points[:1], fill=255, width=width)
    else:  # hatching: parallel strokes, as a crossed-out word
        for k in range(int(rng.integers(3, 9))):
            y = size * (0.15 + 0.7 * k / 8)
            draw.line([(size * 0.1, y + rng.normal(0, 3)), (size * 0.9, y + size * 0.1 + rng.normal(0, 3))],
                      fill=255, width=width)
    return np.asarray(canvas, np.float32) / 255


def _picture(rng, fashion: np.ndarray, span: slice) -> np.ndarray:
    if rng.random() < 0.75:
        image = fashion[rng.integers(span.start, span.stop)]
        size = int(rng.integers(28, 120))
        return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR), np.float32) / 255
    size = int(rng.integers(30, 100))  # a textured blob: noise under a soft mask
    noise = rng.random((size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    mask = (xx ** 2 + yy ** 2 < rng.uniform(0.05, 0.2)).astype(np.float32)
    return noise * mask


def _digit(rng, mnist: np.ndarray, digits: np.ndarray, span: slice,
           drawn_share: float = DRAWN_SHARE) -> tuple[np.ndarray, int]:
    if rng.random() < drawn_share:  # drawn on a pad or with a pen: strokes of any width, 2 to 24 px on a 100 px digit
        from mnist_tiny.reader.strokes import STROKES, drawn

        digit = int(rng.integers(0, 10))
        return drawn(STROKES[digit], rng, int(rng.integers(40, 140)), (2, 24)).astype(np.float32), digit
    index = rng.integers(span.start, span.stop)
    image = mnist[index]
    size = int(rng.integers(28, 140))
    digit = Image.fromarray(image).resize((size, size), Image.BILINEAR)
    k = rng.random()
    if k < 0.25:
        digit = digit.filter(ImageFilter.MaxFilter(3 if size < 80 else 5))  # a marker
    elif k < 0.4 and size > 56:
        digit = digit.filter(ImageFilter.MinFilter(3))  # a fine pen
    return np.asarray(digit, np.float32) / 255, int(digits[index])


def tight(mark: np.ndarray) -> np.ndarray:
    """The mark cut to its ink: every class then gets the same margins (a glyph's canvas, a digit's MNIST frame
    and a dot's padding would otherwise tell the classes apart by their page alone)."""
    rows, cols = np.nonzero(mark > 0.05)
    return mark[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def on_paper(mark: np.ndarray, rng) -> np.ndarray:
    """White-on-black `mark` as a photographed page: a margin (mostly small, as a cropped photo has), either
    polarity, tint, a light gradient, noise."""
    mark = tight(mark)
    h, w = mark.shape
    margin = 1 + int(rng.random() ** 2 * max(h, w))
    page = np.zeros((h + 2 * margin, w + 2 * margin), np.float32)
    page[margin:margin + h, margin:margin + w] = mark
    if rng.random() < 0.5:
        page = page / max(page.max(), 1e-6) * rng.uniform(0.5, 1.0)
    paper, ink = rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.35)
    grey = paper - (paper - ink) * page
    yy, xx = np.mgrid[:page.shape[0], :page.shape[1]] / max(page.shape)
    grey = grey + rng.uniform(-0.1, 0.1) * xx + rng.uniform(-0.1, 0.1) * yy
    grey = grey + rng.normal(0, rng.uniform(0, 0.03), grey.shape)
    if rng.random() < 0.25:
        grey = 1 - grey  # chalk on a board, a light pen on a dark screen
    return np.clip(grey, 0, 1).astype(np.float32)


def mnist_framed(mark: np.ndarray, rng) -> np.ndarray:
    """The mark made as MNIST was (longer side 20 px, centre of mass at the centre of 28×28, light on dark, or
    inverted): images in MNIST's own format are read as they are (`predict.mnist_format`)."""
    framed = centre_digit(np.clip(tight(mark), 0, 1))
    return 1 - framed if rng.random() < 0.3 else framed


def seen(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """What the gate sees of a one-mark image, exactly as the reader makes it (`predict.locate` and the features
    `locate_into` takes): the crop and its box's features."""
    from mnist_tiny.reader.predict import locate

    layout, _ = locate(grey, "one")
    if layout is None or not layout.crops:
        return None
    return layout.crops[0], features(layout.ink, layout.boxes[0])


MIX = {"digit": 0.45, "letter or symbol": 0.25, "dot": 0.06, "scribble or shape": 0.12, "picture": 0.12}


def pages(count: int, seed: int, validation: bool, data_dir: Path):
    """`count` one-mark images as the reader gets them: (grey image, kind, the digit for a digit else None)."""
    from mnist_tiny.data.mnist import load_mnist

    rng = np.random.default_rng(seed)
    train = load_mnist(Path(data_dir), False, test=False)["train"]
    mnist, digits = train.images.numpy(), train.labels.numpy()
    fashion = fashion_images()
    span = slice(55_000, 60_000) if validation else slice(0, 55_000)
    font_files = fonts(validation)
    names = list(MIX)
    made = 0
    while made < count:
        kind = names[rng.choice(len(names), p=list(MIX.values()))]
        label = None
        if kind == "digit":
            mark, label = _digit(rng, mnist, digits, span)
        else:
            mark = {"letter or symbol": lambda: _glyph(rng, font_files), "dot": lambda: _dot(rng),
                    "scribble or shape": lambda: _scribble(rng),
                    "picture": lambda: _picture(rng, fashion, span)}[kind]()
        if mark.max() < 0.2:
            continue
        if kind == "digit" and rng.random() < 0.2:  # a real MNIST digit as stored, in MNIST's format
            index = rng.integers(span.start, span.stop)
            mark, label = mnist[index].astype(np.float32) / 255, int(digits[index])
            grey = 1 - mark if rng.random() < 0.3 else mark
        else:
            grey = mnist_framed(mark, rng) if rng.random() < 0.12 else on_paper(mark, rng)
        made += 1
        yield grey, kind, label


def make(count: int, seed: int, validation: bool, data_dir: Path) -> dict[str, np.ndarray]:
    """`count` examples: crops N×28×28 float32, features N×F, labels N (indices into CLASSES)."""
    crops, feats, labels = [], [], []
    for grey, kind, _ in pages(count * 2, seed, validation, data_dir):
        out = seen(grey)
        if out is None:
            continue
        crops.append(out[0])
        feats.append(out[1])
        labels.append(CLASSES.index(kind))
        if len(labels) == count:
            break
    return {"crops": np.stack(crops), "features": np.stack(feats).astype(np.float32),
            "labels": np.array(labels, np.int64)}
