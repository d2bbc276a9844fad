"""Digits and letters as pen strokes on a 100×100 grid (x, y), and a hand that draws them: slanted, squeezed,
wobbled, with a pen of some width. Used by examples/draw.py (the sample images), the reader's gate data (drawn
digits and letters) and tests/numbergen.py (drawn numbers): one definition for all.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

STROKES = {
    0: [[(50, 10), (28, 22), (22, 50), (28, 80), (50, 90), (72, 80), (78, 50), (72, 22), (50, 10)]],
    1: [[(38, 26), (56, 12), (56, 90)]],
    2: [[(26, 28), (40, 13), (60, 12), (73, 26), (70, 44), (26, 88), (78, 88)]],
    3: [[(28, 22), (45, 14), (66, 16), (74, 30), (66, 45), (48, 50), (68, 56), (77, 72), (66, 86), (44, 89),
         (26, 80)]],
    4: [[(62, 10), (22, 66), (80, 66)], [(62, 10), (60, 92)]],
    5: [[(72, 12), (34, 12), (30, 46), (52, 40), (70, 50), (74, 70), (62, 86), (42, 90), (26, 80)]],
    6: [[(68, 14), (46, 16), (30, 40), (26, 66), (36, 86), (56, 90), (72, 76), (70, 58), (52, 50), (34, 58),
         (28, 68)]],
    7: [[(24, 14), (78, 14), (52, 52), (42, 90)]],
    8: [[(50, 50), (32, 38), (34, 20), (50, 12), (66, 20), (68, 38), (50, 50), (30, 64), (32, 84), (50, 92),
         (68, 84), (70, 64), (50, 50)]],
    9: [[(70, 36), (60, 50), (40, 52), (28, 38), (34, 18), (52, 12), (68, 20), (72, 36), (68, 64), (58, 90)]],
}



# Letters and symbols a hand writes, none of them like a digit (no O, I, l, S, Z, B, G, q, g, b).
LETTERS = {
    "A": [[(18, 92), (50, 10), (82, 92)], [(31, 62), (69, 62)]],
    "E": [[(74, 12), (28, 12), (28, 90), (74, 90)], [(28, 50), (64, 50)]],
    "F": [[(74, 12), (28, 12), (28, 92)], [(28, 50), (62, 50)]],
    "H": [[(26, 10), (26, 92)], [(74, 10), (74, 92)], [(26, 50), (74, 50)]],
    "K": [[(28, 10), (28, 92)], [(74, 12), (28, 58)], [(42, 46), (76, 92)]],
    "M": [[(16, 92), (22, 10), (50, 62), (78, 10), (84, 92)]],
    "N": [[(24, 92), (24, 10), (76, 92), (76, 10)]],
    "W": [[(12, 12), (30, 90), (50, 36), (70, 90), (88, 12)]],
    "X": [[(22, 12), (78, 90)], [(78, 12), (22, 90)]],
    "Y": [[(22, 10), (50, 50), (78, 10)], [(50, 50), (50, 92)]],
    "V": [[(20, 12), (50, 90), (80, 12)]],
    "R": [[(28, 92), (28, 12), (60, 12), (72, 26), (62, 46), (28, 50)], [(48, 50), (76, 92)]],
    "h": [[(28, 8), (28, 92)], [(28, 60), (44, 46), (62, 48), (70, 62), (70, 92)]],
    "k": [[(30, 8), (30, 92)], [(70, 42), (30, 72)], [(44, 62), (72, 92)]],
    "+": [[(50, 18), (50, 82)], [(18, 50), (82, 50)]],
    "=": [[(18, 38), (82, 38)], [(18, 64), (82, 64)]],
    "#": [[(38, 12), (32, 90)], [(66, 12), (60, 90)], [(16, 36), (84, 36)], [(14, 64), (82, 64)]],
    "?": [[(28, 28), (40, 12), (62, 12), (72, 28), (64, 44), (50, 54), (50, 70)], [(50, 86), (50, 90)]],
    "*": [[(50, 14), (50, 86)], [(20, 32), (80, 68)], [(80, 32), (20, 68)]],
    "&": [[(78, 90), (30, 36), (34, 16), (50, 10), (62, 20), (56, 38), (26, 62), (26, 80), (44, 92), (64, 84),
           (80, 62)]],
}


def drawn(lines, rng: np.random.Generator, size: int = 112, widths: tuple[float, float] = (5, 11)) -> np.ndarray:
    """White strokes on black (size×size, floats in [0, 1]): the skeleton slanted, squeezed and wobbled, drawn
    with a pen of a random width (in hundredths of the size) from `widths`, anti-aliased."""
    slant, squeeze = rng.uniform(-0.25, 0.25), rng.uniform(0.75, 1.1)
    width = rng.uniform(*widths)
    big = Image.new("L", (4 * size, 4 * size), 0)
    draw = ImageDraw.Draw(big)
    for line in lines:
        points = []
        for x, y in line:
            x, y = x + rng.normal(0, 2.5), y + rng.normal(0, 2.5)
            x = 50 + (x - 50) * squeeze + slant * (50 - y)
            points.append((x * 4 * size / 100, y * 4 * size / 100))
        draw.line(points, fill=255, width=max(1, int(4 * width * size / 100)), joint="curve")
        r = 2 * width * size / 100
        for x, y in (points[0], points[-1]):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return np.asarray(big.resize((size, size), Image.LANCZOS), dtype=np.float64) / 255
