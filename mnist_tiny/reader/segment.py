"""Find the digits in an ink map: ruled lines out, connected strokes grouped into digits, touching digits cut.

The ink map is `images.paper_to_ink`'s: light ink on a zero background. Steps, each a function below:
`remove_lines` (ruled or squared paper: long thin runs that repeat; strokes thicker than the line stay) →
`components` (8-connected ink, by runs of pixels) → `group` (a digit's strokes overlap in x and lie close: a 5's
bar, a 4 in two strokes) → the reasons there is no digit (specks, texture, noise) → `rows` (top to bottom) →
`cuts` (a blob wider than a narrow digit may be touching digits: cut at its thinnest columns). `spans` and `join`
then offer the runs of pieces that may each be one digit; the reader lets the model choose (`reader.predict.Layout`).
All numpy, no torch and no OpenCV: milliseconds on the reader's ≤512-pixel working image (docs/reading.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median  # of a few boxes' sizes: 40× quicker than numpy's on a list

import numpy as np

THRESHOLD = 0.35  # ink above this is a stroke pixel (paper is 0, a stroke's core 1)
LINE_THRESHOLD = 0.06  # and above this, part of a ruled line if it runs across the page
# A line's band keeps its pixels only if the FLANK rows beside it hold under FLANK_SHARE of its own ink.
FLANK, FLANK_SHARE = 3, 0.5
MAX_DIGITS = 20  # more separate marks than this is writing or a drawing, not a number
MAX_ROWS = 10  # more rows than this is a page of writing, not numbers
MAX_RUNS = 40_000  # more runs of ink than this in ≤512×512 pixels is texture or noise, not handwriting


@dataclass
class Piece:
    """A piece of ink (a digit, part of one, or part of a blob cut in two): its box in the ink map (top, bottom,
    left, right; end-exclusive) and its own ink alone, neighbours masked out."""

    box: tuple[int, int, int, int]
    ink: np.ndarray
    blob: int = 0  # pieces cut from one connected blob share this
    row: int = 0  # the row it lies in, top to bottom


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """For each pixel of `mask`, the length of the horizontal run of set pixels it lies in (0 off the mask)."""
    h, w = mask.shape
    padded = np.zeros((h, w + 1), dtype=bool)
    padded[:, :w] = mask
    flat = padded.ravel()
    starts = flat & ~np.concatenate([[False], flat[:-1]])
    run = np.cumsum(starts) * flat
    lengths = np.bincount(run)
    lengths[0] = 0
    return lengths[run].reshape(h, w + 1)[:, :w]


def long_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    """The pixels of `mask` lying in a horizontal run of at least `min_len` set pixels (`run_lengths(mask) >=
    min_len`, from the runs' ends alone: 1.4-3.8× faster, and most images have no long run at all)."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)  # a clear column each side: no run continues onto the next row
    padded[:, 1:-1] = mask
    step = np.diff(padded.ravel())
    starts, ends = np.flatnonzero(step == 1) + 1, np.flatnonzero(step == -1) + 1  # in padded's flat positions
    keep = ends - starts >= min_len
    if not keep.any():
        return np.zeros((h, w), dtype=bool)
    edges = np.zeros(padded.size + 1, dtype=np.int32)
    edges[starts[keep]] = 1
    edges[ends[keep]] = -1
    return (np.cumsum(edges[:-1]) > 0).reshape(h, w + 2)[:, 1:-1]


def _line_pixels(mask: np.ndarray, lone: bool = True) -> np.ndarray:
    """Ruled lines along the rows of `mask`: ≥2 thin bands of long runs (or, if `lone`, one across the whole
    width). A band is found on a mask widened by ±2 rows and closed over 2-pixel gaps, so a slightly tilted or
    broken line counts; it is thin (a 7's bar in a tight crop is not a line)."""
    h, w = mask.shape
    if w < 64 or h < 16:
        return np.zeros_like(mask)
    wide = mask.copy()
    wide[1:] |= mask[:-1]
    wide[:-1] |= mask[1:]
    wide[2:] |= mask[:-2]
    wide[:-2] |= mask[2:]
    closed = wide.copy()
    for shift in (1, 2):
        closed[:, shift:] |= wide[:, :-shift]
    counts = closed.sum(1)
    if counts.max() < 0.6 * w:  # no row is even 60% ink: no line (the common case, checked cheaply)
        return np.zeros_like(mask)
    # Only a row that is 60% ink can be 60% covered by long runs: the runs are looked for there alone (a digit
    # that fills a small image has a few such rows; the other rows' cover would only ever be compared with 0.6).
    candidates = np.flatnonzero(counts >= 0.6 * w)
    found = long_runs(closed[candidates], int(0.4 * w))
    runs = np.zeros_like(mask)
    runs[candidates] = found
    row_cover = np.zeros(h)
    row_cover[candidates] = found.sum(1) / w
    bands = [(a, b) for a, b in _bands(row_cover >= 0.6) if b - a <= 0.03 * h + 5]
    bands = _standing_out(mask, bands)
    spans = [float(row_cover[a:b].max()) for a, b in bands]
    if not (len(bands) >= 2 or (lone and bands and max(spans) >= 0.95)):
        return np.zeros_like(mask)
    lines = np.zeros_like(mask)
    for a, b in bands:
        lines[a:b] = runs[a:b] & mask[a:b]
    return lines


def _standing_out(mask: np.ndarray, bands: list[tuple[int, int]], reach: int = FLANK) -> list[tuple[int, int]]:
    """The bands whose ink stands out from the rows beside them: a ruled line crosses paper, where a few strokes
    touch it, while the solid columns of a thick digit that fills a small image have ink beside them too (the
    rows up to `reach` beyond the band, other bands left out: squared paper's lines lie close)."""
    h = mask.shape[0]
    cover = mask.mean(1)
    banded = np.zeros(h, dtype=bool)
    for a, b in bands:
        banded[a:b] = True
    kept = []
    for a, b in bands:
        beside = [r for r in [*range(max(0, a - reach), a), *range(b, min(h, b + reach))] if not banded[r]]
        if not beside or float(cover[beside].mean()) <= FLANK_SHARE * float(cover[a:b].max()):
            kept.append((a, b))
    return kept


def _bands(rows: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], rows.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def remove_lines(ink: np.ndarray) -> tuple[np.ndarray, int]:
    """Ink without ruled or squared paper's lines (rows and columns), and how many line pixels went. A stroke that
    crosses a line or lies along it is kept where it is thicker than the line; where it is not, a removed pixel
    takes the weaker of the ink just above and just below the line."""
    mask = ink > LINE_THRESHOLD  # printed lines may be much fainter than the ink (blue rules, a red margin)
    horizontal = _thin(_line_pixels(mask), lambda: run_lengths(mask.T).T)
    # One vertical line alone is a margin only on ruled paper; elsewhere it may be a tall 1.
    # (The columns as rows of a contiguous copy: the same steps on a transposed view take twice as long.)
    vertical = _thin(_line_pixels(np.ascontiguousarray(mask.T), lone=horizontal.any()).T, lambda: run_lengths(mask))
    removed = horizontal | vertical
    if not removed.any():
        return ink, 0
    out = np.where(removed, 0.0, ink)
    # Across a horizontal line: the ink 1..4 rows above and below; across a vertical one, left and right.
    for lines, axis in ((horizontal, 0), (vertical, 1)):
        if lines.any():
            before, after = _nearest(out, lines, axis, 1), _nearest(out, lines, axis, -1)
            out = np.where(lines, np.minimum(before, after), out)
    return out, int(removed.sum())


def _thin(lines: np.ndarray, runs_across) -> np.ndarray:
    """The line pixels where the ink across the line (`runs_across()`: run lengths at right angles to it) is no
    thicker than the line itself: where a stroke crosses the line, or lies along it (a 7's bar written on a
    rule), the ink is thicker there and stays."""
    if not lines.any():
        return lines
    across = runs_across()
    thickness = float(np.median(across[lines]))
    return lines & (across <= thickness + max(2.0, thickness))


def _nearest(ink: np.ndarray, lines: np.ndarray, axis: int, direction: int, reach: int = 4) -> np.ndarray:
    best = np.zeros_like(ink)
    for step in range(1, reach + 1):
        shifted = np.roll(ink, direction * step, axis=axis)
        gone = np.roll(lines, direction * step, axis=axis)
        best = np.maximum(best, np.where(gone, 0.0, shifted))
    return best


INT64_MAX = np.iinfo(np.int64).max  # (np.iinfo costs 15 µs a call)


def components(mask: np.ndarray) -> tuple[np.ndarray, int, np.ndarray] | None:
    """8-connected components as a label image (0 = background), their count and their boxes (count × 4: top,
    bottom, left, right, end-exclusive, from the runs: the pixels need not be searched again); None when the ink
    is so broken up (more than MAX_RUNS runs) that it is texture or noise."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    # Along a padded row the steps alternate up, down, up, …: in row-major order every other one is a run's start,
    # and the one after it that run's end (end-exclusive).
    rows, edges = np.nonzero(np.diff(padded, axis=1))
    rows, starts, ends = rows[::2], edges[::2], edges[1::2]
    n = len(rows)
    if n > MAX_RUNS:
        return None
    # The runs of row r-1 that touch a run of row r (diagonals included) are a contiguous range of that row's
    # runs: those ending at or after its start and starting at or before its end (keys: row-major positions).
    line = w + 2
    start_key, end_key = rows * line + starts, rows * line + ends
    low = np.searchsorted(end_key, (rows - 1) * line + starts, side="left")
    high = np.searchsorted(start_key, (rows - 1) * line + ends, side="right")
    count = np.maximum(high - low, 0)
    b = np.repeat(np.arange(n), count)
    a = np.repeat(low, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    # Each run takes the smallest run index of its component, in whole-array steps (no loop over runs): along
    # every touching pair the larger label is hooked onto the smaller, pointers are jumped until each run points
    # at a root, and again until every pair agrees.
    roots = np.arange(n)
    while True:
        ra, rb = roots[a], roots[b]
        if np.array_equal(ra, rb):
            break
        least = np.minimum(ra, rb)
        np.minimum.at(roots, ra, least)
        np.minimum.at(roots, rb, least)
        while not np.array_equal(jumped := roots[roots], roots):
            roots = jumped
    # Each component's label: the rank of its root among the roots (np.unique(roots, return_inverse=True)).
    run_label = (np.cumsum(roots == np.arange(n)) - 1)[roots]
    labels = np.zeros((h, w), dtype=np.int32)
    lengths = ends - starts
    flat_start = rows * w + starts
    # Paint each run with its label: a run's pixels are flat_start .. flat_start + length.
    index = np.repeat(flat_start, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    labels.ravel()[index] = np.repeat(run_label + 1, lengths)
    count = int(run_label.max()) + 1 if n else 0
    boxes = np.empty((count, 4), dtype=np.int64)
    boxes[:, 0] = boxes[:, 2] = INT64_MAX
    boxes[:, 1] = boxes[:, 3] = -1
    np.minimum.at(boxes[:, 0], run_label, rows)
    np.maximum.at(boxes[:, 1], run_label, rows + 1)
    np.minimum.at(boxes[:, 2], run_label, starts)
    np.maximum.at(boxes[:, 3], run_label, ends)
    return labels, count, boxes


@dataclass
class Blob:
    labels: list[int]
    top: int
    bottom: int
    left: int
    right: int
    mass: float

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def join(self, other: "Blob") -> "Blob":
        return Blob(self.labels + other.labels, min(self.top, other.top), max(self.bottom, other.bottom),
                    min(self.left, other.left), max(self.right, other.right), self.mass + other.mass)


def blobs(ink: np.ndarray, labels: np.ndarray, count: int, boxes: np.ndarray) -> list[Blob]:
    mass = np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count + 1)
    return [Blob([i + 1], top, bottom, left, right, float(mass[i + 1]))
            for i, (top, bottom, left, right) in enumerate(boxes.tolist())]


def group(parts: list[Blob]) -> list[Blob]:
    """Join the strokes of one digit: blobs whose columns overlap by half the narrower one's width and that are
    close above one another (a 5's bar, a 4 drawn in two strokes, a broken loop). Left to right; a sweep per pass, passes until nothing joins."""
    joined = sorted(parts, key=lambda b: b.left)
    while True:
        out: list[Blob] = []
        for b in joined:
            # The blobs already placed whose columns reach into b's: at most a few near the end of the row.
            for i in range(len(out) - 1, max(-1, len(out) - 4), -1):
                a = out[i]
                gap = max(a.top, b.top) - min(a.bottom, b.bottom)  # rows between them (< 0: side by side)
                if (min(a.right, b.right) - max(a.left, b.left) >= 0.5 * min(a.width, b.width)
                        and gap <= 0.3 * max(a.height, b.height)):
                    out[i] = a.join(b)
                    break
            else:
                out.append(b)
        if len(out) == len(joined):
            return sorted(out, key=lambda b: b.left)
        joined = sorted(out, key=lambda b: b.left)


def cuts(blob: Blob, ink: np.ndarray, digit_height: float, pieces: int | None = None) -> list[tuple[int, int]]:
    """Column ranges of a blob that may hold touching digits: the blob whole if it is no wider than 0.6 of the
    digit height, else cut at each place its ink is locally thinnest (up to 5; at least 0.2 heights from either
    end). The reader decides with the model which cuts to keep. `pieces`: cut it into that many at least."""
    width, height = blob.width, max(blob.height, digit_height)
    if pieces is None and width <= 0.6 * height:
        return [(blob.left, blob.right)]
    profile = ink[blob.top:blob.bottom, blob.left:blob.right].sum(0)
    profile = np.convolve(profile, np.ones(5) / 5, mode="same")
    reach, margin = max(1, int(0.08 * height)), int(0.2 * height)
    candidates = [x for x in range(margin, width - margin)
                  if profile[x] <= profile[max(0, x - reach):x + reach + 1].min()]
    keep: list[int] = []
    for x in sorted(candidates, key=lambda x: profile[x]):  # the thinnest first, none closer than `reach`
        if all(abs(x - k) > reach for k in keep) and len(keep) < 5:
            keep.append(x)
    if pieces is not None and len(keep) < pieces - 1:  # asked for more: evenly spaced cuts as well
        keep += [int(k * width / pieces) for k in range(1, pieces)]
    edges = [0] + sorted(set(keep)) + [width]
    return [(blob.left + a, blob.left + b) for a, b in zip(edges, edges[1:]) if b > a]


def rows(groups: list[Blob]) -> list[list[Blob]]:
    """The groups as rows of writing, top to bottom, each left to right. Rows are formed by the digit-sized groups
    (at least half the median height), taken from the top: a group joins a row when half its height lies inside
    the row's band (its members' median centre ± 0.6 of their median height), else it starts a row. A smaller
    mark (a 5's loose bar, a dot) joins the row whose band holds it, and is dropped when none does: what lies
    between rows is not part of a number."""
    height = float(median([g.height for g in groups]))
    lines: list[list[Blob]] = []

    def home(g: Blob) -> list[Blob] | None:
        for line in lines:
            centre = float(median([(m.top + m.bottom) / 2 for m in line]))
            tall = float(median([m.height for m in line]))
            if min(g.bottom, centre + 0.6 * tall) - max(g.top, centre - 0.6 * tall) >= 0.5 * min(g.height, tall):
                return line
        return None

    for g in sorted((g for g in groups if g.height >= 0.5 * height), key=lambda g: (g.top + g.bottom) / 2):
        line = home(g)
        if line is None:
            lines.append([g])
        else:
            line.append(g)
    for g in groups:
        if g.height < 0.5 * height and (line := home(g)) is not None:
            line.append(g)
    lines.sort(key=lambda line: float(median([(g.top + g.bottom) / 2 for g in line])))
    return [sorted(line, key=lambda g: g.left) for line in lines]


def digit_height(pieces: list[Piece]) -> float:
    """The height of the row's digits: the median over the pieces at least half as tall as the tallest."""
    heights = [p.box[1] - p.box[0] for p in pieces]
    return float(median([v for v in heights if v >= 0.5 * max(heights)]))


def spans(pieces: list[Piece], height: float, most: int = 4) -> list[tuple[int, int]]:
    """Runs i..j of neighbouring pieces that may be one digit: pieces cut from one blob (the cut may be wrong),
    or separate blobs close together (gaps of at most 0.12 of the digit height) and, joined, no wider than 1.25
    heights (a broken 0, a 5 whose bar stands apart). Every piece alone is one; the reader chooses with the
    model."""
    out = []
    for i in range(len(pieces)):
        out.append((i, i))
        left, right = pieces[i].box[2], pieces[i].box[3]
        for j in range(i + 1, min(len(pieces), i + most)):
            same = pieces[j].blob == pieces[i].blob
            if not same and pieces[j].box[2] - right > 0.12 * height:
                break
            right = max(right, pieces[j].box[3])
            if right - left > 1.25 * height and not (same and _whole_blob(pieces, i, j)):
                if same:
                    continue  # too wide for a digit, but the whole blob further on may be one
                break
            out.append((i, j))
    return out


def _whole_blob(pieces: list[Piece], i: int, j: int) -> bool:
    """Pieces i..j are all of their blob (the blob uncut, however wide)."""
    blob = pieces[i].blob
    return (i == 0 or pieces[i - 1].blob != blob) and (j == len(pieces) - 1 or pieces[j + 1].blob != blob)


def join(pieces: list[Piece]) -> Piece:
    """Several pieces as one: their boxes' union, each piece's own ink in it."""
    top = min(p.box[0] for p in pieces)
    bottom = max(p.box[1] for p in pieces)
    left = min(p.box[2] for p in pieces)
    right = max(p.box[3] for p in pieces)
    if len(pieces) == 1:
        return pieces[0]
    ink = np.zeros((bottom - top, right - left))
    for p in pieces:
        t, b, le, r = p.box
        region = ink[t - top:b - top, le - left:r - left]
        np.maximum(region, p.ink, out=region)
    return Piece((top, bottom, left, right), ink)


def find_digits(ink: np.ndarray, expect: str = "auto", ruled: bool = False) -> tuple[list[Piece], str | None]:
    """The digits of an ink map, row by row from the top and left to right in a row, each with its own ink
    (neighbours masked out); or no pieces and the reason there is no digit. `expect`: "auto", or "many" to cut a
    lone wide blob into at least two. `ruled`: lines were removed from this ink."""
    mask = ink > THRESHOLD
    if not mask.any():
        return [], "no ink left once the paper and its lines are removed"
    found = components(mask)
    if found is None:
        return [], "no digit: ink all over the image (noise or texture)"
    labels, count, boxes = found
    parts = blobs(ink, labels, count, boxes)
    h, w = ink.shape
    biggest = max(b.mass for b in parts)
    tall = max(b.height for b in parts)
    # Specks (dust, JPEG noise, grain) carry almost no ink; what they carry in all says how noisy the image is.
    strokes = [b for b in parts if b.mass >= 0.02 * biggest or b.height >= 0.25 * tall]
    if len(strokes) > 4 * MAX_DIGITS:
        return [], "no digit: ink all over the image (noise or texture)"
    least = max(6.0, 0.04 * h)  # a digit smaller than this is not one a photo of a number holds
    digits = [g for g in group(strokes) if (g.mass >= 0.08 * biggest or g.height >= 0.4 * tall) and g.height >= least]
    if not digits:
        return [], "no digit: only specks"
    kept = sum(g.mass for g in digits) / sum(b.mass for b in parts)
    if kept < 0.6:
        return [], "no digit: the ink is scattered specks (noise or texture)"
    if any(g.width >= 0.97 * w and g.height >= 0.97 * h for g in digits) and mask.mean() > 0.3:
        return [], "no digit: ink all over the image (noise or texture)"
    if ruled:  # what reaches from edge to edge on ruled paper is what is left of a line, not a digit
        digits = [g for g in digits if g.height < 0.97 * h and g.width < 0.97 * w]
        if not digits:
            return [], "no digit: only ruled lines"
    if sum(g.height >= 0.97 * h for g in digits) >= 3:
        return [], "no digit: stripes from edge to edge (a texture)"
    lines = rows(digits)
    if len(lines) > MAX_ROWS:
        return [], f"no number: marks in {len(lines)} rows (numbers are read on at most {MAX_ROWS} rows)"
    pieces: list[Piece] = []
    number = 0
    for row, line in enumerate(lines):
        height = float(median([g.height for g in line]))
        for g in line:
            want = 2 if expect == "many" and len(digits) == 1 and g.width > 0.6 * g.height else None
            region = labels[g.top:g.bottom, g.left:g.right]
            mine = region == g.labels[0] if len(g.labels) == 1 else np.isin(region, g.labels)  # isin: ~35 µs more
            for left, right in cuts(g, ink, height, want):
                own = np.where(mine[:, left - g.left:right - g.left], ink[g.top:g.bottom, left:right], 0.0)
                kept_rows = np.flatnonzero(own.max(1) > THRESHOLD)
                if len(kept_rows) == 0:
                    continue
                top, bottom = g.top + int(kept_rows[0]), g.top + int(kept_rows[-1]) + 1
                pieces.append(Piece((top, bottom, left, right), own[kept_rows[0]:kept_rows[-1] + 1], number, row))
            number += 1
    return pieces, None if pieces else "no digit: only specks"
