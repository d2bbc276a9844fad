"""The reader's line reader: a row of digits read whole, without cutting it into digits first — a small fully
convolutional network read with CTC (`reader/lines.onnx`, trained by `reader.line_train` on `reader.line_data`).
Runs on onnxruntime, without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

BLANK = 10  # CTC's blank; classes 0–9 are the digits
# A row is read whole instead of as cut where the two disagree and the line reader's path is this many times
# likelier than the cut's digits together (chosen on generated validation numbers: docs/reading.md).
LINE_MARGIN = 4.0


def lines_path() -> Path:
    return Path(str(resources.files("mnist_tiny.reader") / "lines.onnx"))


@dataclass
class Reading:
    """A row read whole: its digits, the chance of the best path, and per digit the steps it was read at (first,
    last; a step is 2 px of the line image) and its ten digits' chances at its surest step."""

    digits: list[int]
    chance: float
    steps: list[tuple[int, int]]
    probs: list[np.ndarray]

    @property
    def text(self) -> str:
        return "".join(map(str, self.digits))


def decode(logits: np.ndarray) -> Reading:
    """Greedy CTC decoding of one row's T×11 logits: the likeliest class at each step, repeats merged, blanks
    dropped."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    best = p.argmax(1)
    digits, steps, surest = [], [], []
    last = BLANK
    for t, k in enumerate(best):
        if k != BLANK and k == last:  # the same digit read on: one digit, longer
            steps[-1] = (steps[-1][0], t)
            if p[t, k] > p[surest[-1], k]:
                surest[-1] = t
        elif k != BLANK:
            digits.append(int(k))
            steps.append((t, t))
            surest.append(t)
        last = k
    probs = [p[t, :BLANK] / p[t, :BLANK].sum() for t in surest]
    return Reading(digits, float(np.exp(np.log(p.max(1) + 1e-12).sum())), steps, probs)


class LineReader:
    """`lines.onnx` on onnxruntime: line images (28×W each, `line_data.line_of`) → their digits and chances."""

    def __init__(self, path: Path | None = None, threads: int | None = 1):
        from mnist_tiny.reader.sessions import cpu_session

        self.path = Path(path or lines_path())
        self.session = cpu_session(self.path, threads)

    def __call__(self, lines: list[np.ndarray]) -> list[Reading]:
        out: list[Reading] = [Reading([], 0.0, [], [])] * len(lines)
        order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
        for k in range(0, len(order), 64):  # rows of about the same width together
            index = order[k:k + 64]
            width = max(lines[i].shape[1] for i in index)
            width += width % 2
            batch = np.zeros((len(index), 1, 28, width), np.float32)
            for n, i in enumerate(index):
                batch[n, 0, :, :lines[i].shape[1]] = lines[i]
            logits = self.session.run(None, {"line": batch})[0]
            for n, i in enumerate(index):
                out[i] = decode(logits[n, :(lines[i].shape[1] + 1) // 2])
        return out


_LINES: dict[str, LineReader | None] = {}


def shipped_lines() -> LineReader | None:
    """The shipped line reader, loaded once per process; None when the file is missing."""
    if "lines" not in _LINES:
        _LINES["lines"] = LineReader() if lines_path().is_file() else None
    return _LINES["lines"]


def line_digits(line: np.ndarray, box: tuple[int, int, int, int], reading: Reading, k: int
                ) -> list[tuple[dict, np.ndarray, tuple[int, int, int, int]]]:
    """A row read whole, as the reader reports digits: per digit its fields (`digit`, `confidence`, `top`), its
    28×28 (cut from the line image between the midpoints of its neighbours' steps) and its box in the ink map
    (`box`: the row's, where the line image was cut from)."""
    from mnist_tiny.reader.images import centre_digit
    from mnist_tiny.reader.line_data import DIGIT_HEIGHT, MARGIN

    top, bottom, left, right = box
    width = line.shape[1] - 2 * MARGIN
    centres = [first + last + 1 for first, last in reading.steps]  # in line pixels: a step is 2 px
    cuts = [MARGIN] + [(a + b) // 2 for a, b in zip(centres, centres[1:])] + [line.shape[1] - MARGIN]
    out = []
    for n, (digit, probs) in enumerate(zip(reading.digits, reading.probs)):
        a, b = cuts[n], max(cuts[n + 1], cuts[n] + 1)
        part = line[:, a:b]
        ys = np.nonzero((part > 0.1).any(1))[0]
        y0, y1 = (ys[0], ys[-1] + 1) if len(ys) else (MARGIN, MARGIN + DIGIT_HEIGHT)
        to_x = (right - left) / max(1, width)
        to_y = (bottom - top) / DIGIT_HEIGHT
        ink_box = (round(top + (y0 - MARGIN) * to_y), round(top + (y1 - MARGIN) * to_y),
                   round(left + (a - MARGIN) * to_x), round(left + (b - MARGIN) * to_x))
        best = np.argsort(-probs, kind="stable")[:k]
        fields = {"digit": digit, "confidence": float(probs[digit]),
                  "top": [[int(d), float(probs[d])] for d in best]}
        out.append((fields, centre_digit(part), ink_box))
    return out


def read_rows(found: list, cuts: list[list[int]], lines: Any) -> dict[tuple[int, int], Reading]:
    """The line reader's reading, by (found index, row), of every row that its image's cut reads as two or more
    digits (the only rows `rows_instead` may give it), in one batch. `lines`: a LineReader, "shipped" or None."""
    from mnist_tiny.reader.line_data import line_of

    keys = []
    for i, ((_, layout, _), chosen) in enumerate(zip(found, cuts)):
        if layout.row_inks and len(chosen) >= 2:
            counts = np.bincount([layout.row(j) for j in chosen])
            order = sorted(set(layout.rows))  # the rows' numbers, in the order of `layout.row_inks`
            keys += [(i, n) for n, row in enumerate(order) if row < len(counts) and counts[row] >= 2]
    if lines == "shipped" and keys:  # loaded only when a number needs it: a lone digit starts no session for it
        lines = shipped_lines()
    if lines is None or not keys:
        return {}
    for i, n in keys:  # made only for the rows read: a lone digit costs no line image
        layout = found[i][1]
        whole = layout.row_inks[n]
        line, (t, b, left, right) = line_of(whole.ink)
        layout.lines[n] = line, (whole.box[0] + t, whole.box[0] + b, whole.box[2] + left, whole.box[2] + right)
    return dict(zip(keys, lines([found[i][1].lines[n][0] for i, n in keys])))


def rows_instead(layout: Any, i: int, made: list, readings: dict, k: int) -> list:
    """`made` (a `predict.read_digits` image's digits as cut: fields, crops, 28×28, box), each row of a number read
    as the line reader read it where it disagrees with the cut and is surer by a margin (LINE_MARGIN: its path's
    chance against the product of the row's digits' confidences). A row the cut reads as one digit stays the
    cut's: a lone digit is read better by the digit model and judged by the gate."""
    rows = sorted(set(layout.rows or [0]))
    out = []
    for n, row in enumerate(rows):
        mine = [m for m in made if m[0]["row"] == row]
        reading = readings.get((i, n))
        cut = "".join(str(m[0]["digit"]) for m in mine)
        sure = float(np.prod([m[0]["confidence"] for m in mine]))
        if (len(mine) < 2 or reading is None or not reading.digits or reading.text == cut
                or reading.chance * LINE_MARGIN <= sure or (layout.expect == "many" and len(reading.digits) < 2)):
            out += mine
            continue
        cut_crops = [j for m in mine for j in m[1]]
        for fields, crop, box in line_digits(*layout.lines[n], reading, k):
            fields["row"] = row
            out.append((fields, cut_crops, crop, box))
    return out
