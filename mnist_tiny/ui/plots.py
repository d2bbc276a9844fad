"""PNG pictures drawn with Pillow (already a dependency for `predict`): training curves and a confusion heat-map.

Pillow instead of matplotlib keeps the install small and `import` fast; these plots need lines, boxes and text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

TRAIN, VAL, GRID, INK = (31, 119, 180), (214, 39, 40), (225, 225, 225), (40, 40, 40)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


# Colours for several runs on one plot (Tableau 10, as matplotlib's default cycle).
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def axis_range(values: Sequence[float], floor: float | None = None,
               ceiling: float | None = None) -> tuple[float, float]:
    """The values with 8% of room either side, but never past what the quantity can be."""
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.005, hi + 0.005
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    if floor is not None:
        lo = max(lo, floor)
    if ceiling is not None:
        hi = min(hi, ceiling)
    return lo, hi


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], title: str,
           series: Sequence[tuple[str, Sequence[float], tuple[int, int, int]]], percent: bool,
           floor: float | None = None, ceiling: float | None = None) -> None:
    """One line chart. The axis stays within what the quantity can be (`floor`, `ceiling`: a loss is never below
    0, an accuracy never above 100%), and the legend sits above the box, never over a curve."""
    left, top, right, bottom = box
    lo, hi = axis_range([v for _, ys, _ in series for v in ys], floor, ceiling)
    n = max(len(ys) for _, ys, _ in series)
    font, small = _font(15), _font(12)
    draw.text((left, top - 44), title, fill=INK, font=font)
    x_legend = left
    for label, _, colour in series:  # one row of keys between the title and the box
        if not label:
            continue
        draw.line([(x_legend, top - 12), (x_legend + 18, top - 12)], fill=colour, width=3)
        draw.text((x_legend + 22, top - 19), label, fill=INK, font=small)
        x_legend += 34 + int(draw.textlength(label, font=small))

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (right - left) * (i / max(1, n - 1))
        return x, bottom - (bottom - top) * (v - lo) / (hi - lo)

    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = xy(0, v)[1]
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((left - 58, y - 7), f"{100 * v:.2f}%" if percent else f"{v:.3f}", fill=INK, font=small)
    for i in range(n):
        x = xy(i, lo)[0]
        if n <= 20 or i % max(1, n // 10) == 0:
            draw.text((x - 4, bottom + 6), str(i + 1), fill=INK, font=small)
    draw.text(((left + right) / 2 - 16, bottom + 22), "epoch", fill=INK, font=small)
    draw.rectangle(box, outline=INK)
    for label, ys, colour in series:
        points = [xy(i, v) for i, v in enumerate(ys)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)


def training_curves(history: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Loss and accuracy per epoch, train (augmented batches) vs validation, side by side."""
    if not history:
        return
    image = Image.new("RGB", (1100, 470), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 10), title, fill=INK, font=_font(18))
    col = lambda key: [row[key] for row in history]  # noqa: E731
    _panel(draw, (90, 100, 520, 410), "loss", [("train", col("train_loss"), TRAIN), ("val", col("val_loss"), VAL)],
           False, floor=0.0)
    _panel(draw, (640, 100, 1070, 410), "accuracy",
           [("train", col("train_acc"), TRAIN), ("val", col("val_acc"), VAL)], True, floor=0.0, ceiling=1.0)
    image.save(path)


def runs_curves(runs: list[tuple[str, list[dict[str, Any]]]], path: Path, title: str = "") -> None:
    """Several runs on one picture: validation accuracy and training loss per epoch, one colour per run."""
    runs = [(label, history) for label, history in runs if history]
    if not runs:
        return
    image = Image.new("RGB", (1100, 470 + 18 * max(0, len(runs) - 4)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 10), title, fill=INK, font=_font(18))
    colour = [PALETTE[i % len(PALETTE)] for i in range(len(runs))]
    top = 100 + 18 * max(0, len(runs) - 4)
    _legend_rows(draw, [(label, c) for (label, _), c in zip(runs, colour)], (20, 40))
    _panel(draw, (90, top, 520, top + 310), "validation accuracy",
           [("", [r["val_acc"] for r in h], c) for (_, h), c in zip(runs, colour)], True, floor=0.0, ceiling=1.0)
    _panel(draw, (640, top, 1070, top + 310), "training loss",
           [("", [r["train_loss"] for r in h], c) for (_, h), c in zip(runs, colour)], False, floor=0.0)
    image.save(path)


def _legend_rows(draw: ImageDraw.ImageDraw, keys: list[tuple[str, tuple[int, int, int]]], at: tuple[int, int]) -> None:
    small = _font(12)
    for k, (label, colour) in enumerate(keys):
        x, y = at[0] + 540 * (k % 2), at[1] + 18 * (k // 2)
        draw.line([(x, y + 7), (x + 18, y + 7)], fill=colour, width=3)
        draw.text((x + 22, y), label[:80], fill=INK, font=small)


def confusion_heatmap(confusion: list[list[int]], path: Path, title: str = "") -> None:
    """10×10 heat-map; off-diagonal cells are scaled to the largest error so the mistakes stand out."""
    cell, margin = 52, 80
    size = margin + 10 * cell + 20
    image = Image.new("RGB", (size, size + 30), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(16), _font(13)
    draw.text((20, 10), title, fill=INK, font=font)
    worst = max([confusion[i][j] for i in range(10) for j in range(10) if i != j] + [1])
    for i in range(10):
        draw.text((margin - 24, margin + i * cell + cell // 2 - 8), str(i), fill=INK, font=font)
        draw.text((margin + i * cell + cell // 2 - 4, margin - 26), str(i), fill=INK, font=font)
        for j in range(10):
            v = confusion[i][j]
            if i == j:
                colour = (220, 235, 250)
            else:
                t = v / worst
                colour = (255, int(255 - 200 * t), int(255 - 220 * t))
            x, y = margin + j * cell, margin + i * cell
            draw.rectangle([x, y, x + cell, y + cell], fill=colour, outline=GRID)
            if v:
                draw.text((x + 6, y + cell // 2 - 7), str(v), fill=INK, font=small)
    draw.text((margin, size), "rows: true digit · columns: predicted digit", fill=INK, font=small)
    image.save(path)


def error_grid(images, misclassified: list[dict[str, int]], path: Path, title: str = "", limit: int = 100) -> None:
    """The misclassified digits in a grid (torchvision's make_grid), each captioned true -> predicted."""
    import torch
    from torchvision.utils import make_grid

    shown = misclassified[:limit]
    columns, scale, caption = 10, 3, 16
    cell = 28 * scale + 4
    if shown:
        batch = images[torch.tensor([m["index"] for m in shown])].unsqueeze(1).float().div(255)
        batch = torch.nn.functional.interpolate(batch, scale_factor=scale, mode="nearest")
        grid = make_grid(batch, nrow=columns, padding=4, pad_value=0.25)
        picture = Image.fromarray((grid[0] * 255).byte().numpy(), mode="L").convert("RGB")
    else:
        picture = Image.new("RGB", (columns * cell + 4, cell + 4), (64, 64, 64))
    rows = max(1, (len(shown) + columns - 1) // columns)
    canvas = Image.new("RGB", (picture.width, 40 + rows * (cell + caption) + 4), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 10), title + ("" if len(misclassified) <= limit else f" · first {limit} shown"), fill=INK, font=_font(15))
    font = _font(14)
    for k, m in enumerate(shown):
        r, c = divmod(k, columns)
        tile = picture.crop((c * cell, r * cell, c * cell + cell + 4, r * cell + cell + 4))
        canvas.paste(tile, (c * cell, 40 + r * (cell + caption)))
        draw.text((c * cell + 8, 40 + r * (cell + caption) + cell + 2), f"{m['true']} -> {m['predicted']}", fill=VAL, font=font)
    if not shown:
        draw.text((10, 60), "no errors", fill=INK, font=font)
    canvas.save(path)


def reliability_diagram(curves: list[tuple[str, dict[str, Any]]], path: Path, title: str = "") -> None:
    """Accuracy against confidence per bin (`evaluation.calibration.reliability`), one line per curve (raw,
    calibrated), the diagonal where they would be perfectly calibrated. The low-confidence bins of a 99% model
    hold few images, so each bin's point is sized by its count."""
    width, height, margin = 640, 560, 70
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(16), _font(13)
    draw.text((20, 10), title, fill=INK, font=font)
    left, top, right, bottom = margin, 60, width - 30, height - margin
    lo = min([b["confidence"] for _, r in curves for b in r["bins"]] + [0.5])
    lo = max(0.0, min(0.9, int(lo * 10) / 10))  # the axis starts at the lowest tenth holding a bin

    def xy(conf: float, acc: float) -> tuple[float, float]:
        return (left + (conf - lo) / (1 - lo) * (right - left), bottom - (acc - lo) / (1 - lo) * (bottom - top))

    draw.rectangle([left, top, right, bottom], outline=GRID)
    for k in range(int(round((1 - lo) * 10)) + 1):
        v = lo + k / 10
        x, y = xy(v, v)
        draw.line([x, top, x, bottom], fill=GRID)
        draw.line([left, y, right, y], fill=GRID)
        draw.text((x - 12, bottom + 6), f"{100 * v:.0f}%", fill=INK, font=small)
        draw.text((left - 44, y - 7), f"{100 * v:.0f}%", fill=INK, font=small)
    draw.line([xy(lo, lo), xy(1, 1)], fill=(150, 150, 150), width=1)
    total = max(1, max(b["count"] for _, r in curves for b in r["bins"]))
    for (label, r), colour in zip(curves, PALETTE):
        points = [xy(b["confidence"], max(lo, b["accuracy"])) for b in r["bins"]]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for (x, y), b in zip(points, r["bins"]):
            radius = 2 + 6 * (b["count"] / total) ** 0.5
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    for k, ((label, r), colour) in enumerate(zip(curves, PALETTE)):
        y = top + 10 + 18 * k
        draw.line([(left + 10, y + 7), (left + 28, y + 7)], fill=colour, width=3)
        draw.text((left + 32, y), f"{label}: ECE {100 * r['ece']:.2f}%", fill=INK, font=small)
    draw.text((left, height - 30), "x: mean confidence in the bin · y: accuracy in the bin · dot size: images",
              fill=INK, font=small)
    image.save(path)
