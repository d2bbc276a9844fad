"""Draw docs/frontier.png: test accuracy against parameters, our shipped models beside the public points.

    python docs/frontier_plot.py    # rewrites docs/frontier.png

Our points are the sweeps recorded beside the shipped weights (`models.hub.weights_meta`, from
`mnist_tiny/models/weights/NAME.json`: the mean ± std over seeds at the last epoch, never chosen on the test set). The public points are those issue 23 lists,
drawn hollow and labelled as what they are; the grey steps are the issue's "must" per class.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from mnist_tiny.models.hub import weights_meta
from mnist_tiny.models.refs import get_spec, list_models
from mnist_tiny.ui.plots import PALETTE

INK, GRID = (40, 40, 40), (225, 225, 225)


def _font(size: int):
    return ImageFont.load_default(size=size)

REPO = Path(__file__).resolve().parents[1]
OURS_COLOUR, PUBLIC_COLOUR, MUST_COLOUR = PALETTE[0], PALETTE[3], (150, 150, 150)

# (params, accuracy %, label); the kind says how the figure was reached.
PUBLIC = [
    (575, 98.00, "575: 98.00%, best run, picked on test (pruned)"),
    (997, 98.76, "997: 98.76%, mean of 223 seeds (up to 200 epochs)"),
    (1936, 99.10, "1,936: 99.10%, best run, picked on test (75 epochs)"),
    (4862, 99.07, "4,862: 99.07%, best run, picked on test"),
]
PUBLIC_BAND = (6000, 9000, 99.4, 99.5, "6k-9k: 99.4-99.5%, best runs, picked on test")
MUST = [(600, 97.5), (1000, 98.5), (2000, 99.1), (5000, 99.3), (8000, 99.4)]  # issue 23's "must" per class


def ours() -> list[tuple[int, float, float, str]]:
    """(params, mean %, std %, name) of every registry model whose shipped weights record a sweep."""
    rows = []
    for name in list_models():
        meta = weights_meta(get_spec(name))
        if meta.get("sweep"):
            rows.append((meta["params"], 100 * meta["sweep"]["mean"], 100 * meta["sweep"]["std"], name))
    return rows


def main(out: Path = REPO / "docs" / "frontier.png") -> None:
    width, height = 1000, 680
    left, top, right, bottom = 80, 64, width - 20, height - 60
    # The error rate on a log scale: 4% and 0.5% error are both readable, and the crowd near 99.4% spreads out.
    x_lo, x_hi, e_lo, e_hi = math.log10(400), math.log10(40000), math.log10(0.40), math.log10(5.0)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(15), _font(12)

    def xy(params: float, acc: float) -> tuple[float, float]:
        return (left + (math.log10(params) - x_lo) / (x_hi - x_lo) * (right - left),
                top + (math.log10(100 - acc) - e_lo) / (e_hi - e_lo) * (bottom - top))

    draw.text((left, 14), "MNIST test accuracy against parameters (filled: ours, mean ± std over seeds at the "
              "last epoch; hollow: public)", fill=INK, font=font)
    for acc in (95, 96, 97, 98, 98.5, 99, 99.2, 99.4, 99.5):
        y = xy(1000, acc)[1]
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((left - 52, y - 7), f"{acc:g}%", fill=INK, font=small)
    for p in (500, 1000, 2000, 5000, 10000, 25000):
        x = xy(p, 99.0)[0]
        draw.line([(x, top), (x, bottom)], fill=GRID)
        draw.text((x - 12, bottom + 6), f"{p:,}", fill=INK, font=small)
    draw.text(((left + right) / 2 - 90, bottom + 26), "parameters (log scale)", fill=INK, font=small)
    draw.text((8, top - 22), "test accuracy (error on a log scale)", fill=INK, font=small)
    draw.rectangle([left, top, right, bottom], outline=INK)

    taken: list[tuple[float, float, float, float]] = []  # label and marker boxes, so labels never overlap them
    # The "must" per class: a step at each class's accuracy, from its parameter bound down to the previous one.
    previous = 400
    for bound, acc in MUST:
        (x0, y), (x1, _) = xy(previous, acc), xy(bound, acc)
        for x in range(int(x0), int(x1), 8):  # dashed
            draw.line([(x, y), (min(x + 4, x1), y)], fill=MUST_COLOUR, width=2)
        draw.text((x0 + 2, y + 2), f"must, up to {bound:,}", fill=MUST_COLOUR, font=small)
        taken.append((x0, y, x0 + 2 + draw.textlength(f"must, up to {bound:,}", font=small), y + 16))
        previous = bound

    def place(x: float, y: float, text: str, colour, x_left: float | None = None) -> None:
        """The label at the nearest free spot: right of its mark, left of it (of `x_left` if given), or centred
        above or below it, moving away row by row until it overlaps no earlier label or mark."""
        w = draw.textlength(text, font=small)
        right_of, left_of, centred = x + 8, (x if x_left is None else x_left) - 8 - w, x - w / 2
        cost = {right_of: 0, left_of: 6, centred: 10}
        spots = sorted(((x0, dy) for dy in range(-84, 85, 14) for x0 in (right_of, left_of, centred)
                        if not (x0 == centred and abs(dy) < 14)),  # centred on the mark itself
                       key=lambda spot: abs(spot[1]) + cost[spot[0]])
        for x0, dy in spots:
            box = (x0, y - 7 + dy, x0 + w, y + 7 + dy)
            inside = box[0] >= left + 2 and box[2] <= right - 2 and box[1] >= top + 2 and box[3] <= bottom - 2
            if inside and not any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3] for b in taken):
                taken.append(box)
                draw.text((box[0], box[1]), text, fill=colour, font=small)
                return

    x0, y0 = xy(PUBLIC_BAND[0], PUBLIC_BAND[3])
    x1, y1 = xy(PUBLIC_BAND[1], PUBLIC_BAND[2])
    draw.rectangle([x0, y0, x1, y1], outline=PUBLIC_COLOUR, width=2)
    taken.append((x0, y0, x1, y1))
    public_labels = [(x1, (y0 + y1) / 2, PUBLIC_BAND[4], x0)]
    for params, acc, label in PUBLIC:
        x, y = xy(params, acc)
        draw.polygon([(x, y - 6), (x + 6, y), (x, y + 6), (x - 6, y)], outline=PUBLIC_COLOUR, width=2)
        taken.append((x - 6, y - 6, x + 6, y + 6))
        public_labels.append((x, y, label, None))
    rows = ours()
    for params, mean, std, name in rows:
        x, y = xy(params, mean)
        _, y_top = xy(params, mean + std)
        _, y_bottom = xy(params, mean - std)
        draw.line([(x, y_top), (x, y_bottom)], fill=OURS_COLOUR, width=2)
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=OURS_COLOUR)
        taken.append((x - 4, y - 4, x + 4, y + 4))
    for params, mean, _, name in sorted(rows, key=lambda r: -r[1]):
        place(*xy(params, mean), f"{name} {mean:.2f}%", OURS_COLOUR)
    for x, y, label, x_left in public_labels:
        place(x, y, label, PUBLIC_COLOUR, x_left)
    image.save(out)


if __name__ == "__main__":
    main()
