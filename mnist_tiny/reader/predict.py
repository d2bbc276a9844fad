"""Read digits from image files: expand directories, preprocess each file, classify them in batches.

A file that cannot be read becomes an `{"path", "error"}` entry; the other files are still predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Callable, Iterable

import numpy as np

from mnist_tiny.errors import UserError, require_file
from mnist_tiny.reader.images import _ink_box, centre_digit, load_image, paper_to_ink, resize_area, shrink_to
from mnist_tiny.reader.line import read_rows, rows_instead
from mnist_tiny.reader.segment import MAX_DIGITS, digit_height, find_digits, join, remove_lines, spans

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm"}


MAX_FILES = 100_000  # per directory: memory for the results stays bounded


def expand_inputs(paths: Iterable[Path]) -> list[tuple[Path, str | None]]:
    """Files as given; directories become their image files, sorted. An empty directory is an error entry, and so
    is an image name in it that is not a readable file (a dangling link, a link loop, a FIFO): never a silent skip."""
    expanded: list[tuple[Path, str | None]] = []
    for given in paths:
        if isinstance(given, str) and not given.strip():
            expanded.append((Path(given), "an empty path (not the current folder): name a file or a folder"))
            continue
        path = Path(given)
        if not path.is_dir():
            expanded.append((path, None))
            continue
        try:
            names = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as e:
            expanded.append((path, f"cannot list this directory ({e.strerror})"))
            continue
        if not names:
            expanded.append((path, f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this directory"))
        for p in names[:MAX_FILES]:
            try:
                require_file(p, str(p))
                expanded.append((p, None))
            except UserError as e:
                expanded.append((p, str(e).removeprefix(f"{p}: ")))
        if len(names) > MAX_FILES:
            expanded.append((path, f"holds {len(names):,} images; read the first {MAX_FILES:,}"))
    return expanded


LOW_CONFIDENCE = 0.7  # a digit read with less (calibrated) confidence is flagged
# How a number is cut into digits (`Layout.best`): the classifier's log-confidence in each span's digit, plus
# GATE_WEIGHT × the gate's log-chance that the span is a digit at all (a third of a 0 is a confident 1 to a
# classifier and a stroke to the gate), against these priors. Chosen together on generated validation numbers
# (docs/reading.md): without the gate, 1.0 and 0.5.
GATE_WEIGHT = 0.25
JOIN_COST = 0.5  # log-odds against reading separate blobs as one digit
CUT_COST = 0.5  # and against cutting a connected blob (touching digits)
# Against leaving a short piece out of the reading, per typical digit's worth of ink in it: a speck costs nothing,
# a 6's loop cut off its stem (read as a confident 1) does.
SKIP_COST = 2.0
WIDE, WIDE_COST = 1.4, 2.0  # and, per unit of width over WIDE heights, against one digit that wide


@dataclass
class Layout:
    """Where the digits of one image may be: pieces of ink left to right and the runs of them that may each be one
    digit (`spans`, with a 28×28 crop and a box each; the run over every piece is the image read as one digit).
    With `expect="one"` there are no pieces: one crop, the whole image."""

    spans: list[tuple[int, int]]
    crops: list[np.ndarray]
    boxes: list[tuple[int, int, int, int]]  # per span: top, bottom, left, right in the ink map
    short: list[bool]  # per piece: too short to be a digit alone (a 5's bar, a dash, a speck)
    blobs: list[int]  # per piece: the connected blob it was cut from
    ink: np.ndarray | None = None  # the ink map (for `--show`: its preview), else None
    expect: str = "auto"
    width: int = 0  # of the ink map the boxes are in
    features: list | None = None  # per span: what the gate sees beside the crop (`gate.features`)
    as_is: bool = False  # an image in MNIST's own format, read as it is (`mnist_format`)
    rows: list[int] | None = None  # per piece: its row, top to bottom (spans never cross rows)
    row_inks: list | None = None  # per row: its pieces joined (a `segment.Piece`), for the line reader
    # per row the line reader read: its line image and where in the ink map it was cut (`line.read_rows` fills it)
    lines: dict[int, tuple[np.ndarray, tuple[int, int, int, int]]] = field(default_factory=dict)
    scale: tuple[float, float] = (1.0, 1.0)  # ink map → the image's own pixels (x, y)
    mass: list[float] | None = None  # per piece: its ink over a typical digit's of its row (what leaving it out costs)

    def row(self, s: int) -> int:
        """The row of span `s`."""
        return self.rows[self.spans[s][0]] if self.rows else 0

    def cost(self, a: int, b: int, s: int) -> float:
        """The prior against span a..b (the `s`-th): separate blobs read as one digit need evidence, and so do
        a blob's cut (where the span starts or ends inside a blob) and one digit far wider than tall."""
        joins = len(set(self.blobs[a:b + 1])) - 1
        cut = (a > 0 and self.blobs[a - 1] == self.blobs[a]) + (b < len(self.blobs) - 1 and self.blobs[b + 1] == self.blobs[b])
        top, bottom, left, right = self.boxes[s]
        wide = max(0.0, (right - left) / max(1, bottom - top) - WIDE)  # far wider than tall: two digits
        return JOIN_COST * joins + CUT_COST * cut / 2 + WIDE_COST * wide

    def best(self, logp: np.ndarray) -> list[int]:
        """The reading that the model finds likeliest: spans covering the pieces left to right (a short piece may
        be left out), maximising the sum of each span's log-confidence; `expect="many"` asks for at least two."""
        n = len(self.short)
        if n == 0:
            return [0]  # "one": the whole image
        best: list[tuple[float, list[int]] | None] = [(0.0, [])] + [None] * n
        for j in range(1, n + 1):
            options = []
            if self.short[j - 1] and best[j - 1] is not None:
                left_out = SKIP_COST * self.mass[j - 1] if self.mass else 0.0
                options.append((best[j - 1][0] - left_out, best[j - 1][1]))
            for s, (a, b) in enumerate(self.spans):
                if b != j - 1 or best[a] is None or (a == b and self.short[a]):
                    continue
                if self.expect == "many" and n > 1 and a == 0 and b == n - 1:
                    continue  # a number was asked for (a lone narrow piece cannot be cut: it stays one digit)
                score = logp[s] - self.cost(a, b, s)
                options.append((best[a][0] + score, best[a][1] + [s]))
            best[j] = max(options, key=lambda o: o[0]) if options else None
        return best[n][1] if best[n] is not None else []


def mnist_format(grey: np.ndarray) -> np.ndarray | None:
    """A 28×28 image already made as MNIST is (a digit centred in a plain frame, light on dark or, inverted, dark
    on light) is read exactly as it is: re-centring it would move a digit the model knows as it stands and lose
    points (docs/reading.md). None for anything else."""
    if grey.shape != (28, 28):
        return None
    frame = np.concatenate([grey[:2].ravel(), grey[-2:].ravel(), grey[2:-2, :2].ravel(), grey[2:-2, -2:].ravel()])
    if float(np.median(frame)) > 0.5:
        grey, frame = 1 - grey, 1 - frame
    paper, ink = float(np.median(frame)), float(grey.max())
    if float(np.mean(frame > 0.5)) > 0.1 or ink - paper < 0.3:  # not a plain frame, or no ink
        return None
    # Tinted paper or grey ink to MNIST's black and white; MNIST's own PNGs (paper 0, ink 1) are left as they are.
    return np.clip((np.asarray(grey, np.float32) - paper) / (ink - paper), 0, 1).astype(np.float32)


def locate(grey: np.ndarray, expect: str = "auto") -> tuple[Layout | None, str | None]:
    """The possible digits of a grey image (see `Layout`), or None and the reason there is none.

    `expect`: "auto" (one digit or a number, decided from the image), "one" (the whole image is one digit, as
    before numbers were read), "many" (a number: a lone wide blob is cut into at least two digits)."""
    if expect != "many" and (as_is := mnist_format(grey)) is not None:
        ink = paper_to_ink(as_is)  # for the gate's features and --show: the ink map every other image gets
        ink = as_is if ink is None else ink
        box = _ink_box(ink) or (0, 28, 0, 28)
        return Layout([], [as_is], [box], [], [], ink, "one", 28, as_is=True), None
    ink = paper_to_ink(grey)
    if ink is None:
        return None, "no digit: a blank or uniform image"
    if expect == "one":
        box = _ink_box(ink) or (0, ink.shape[0], 0, ink.shape[1])
        return Layout([], [centre_digit(ink)], [box], [], [], ink, expect, ink.shape[1]), None
    clean, removed = remove_lines(ink)
    pieces, reason = find_digits(clean, expect, ruled=removed > 0)
    if reason:
        return None, reason
    runs: list[tuple[int, int]] = []
    short: list[bool] = []
    mass: list[float] = []  # per piece: its ink over that of a typical digit of its row
    row_inks = []
    rows = [p.row for p in pieces]
    for row in sorted(set(rows)):
        first, last = rows.index(row), len(rows) - rows[::-1].index(row)  # a row's pieces are neighbours
        mine = pieces[first:last]
        row_inks.append(join(mine))
        if len(mine) > MAX_DIGITS:
            return None, f"no number: {len(mine)} separate marks in a row (a number has at most {MAX_DIGITS} digits)"
        height = digit_height(mine)
        runs += [(first + a, first + b) for a, b in spans(mine, height)]
        small = [p.box[1] - p.box[0] < 0.45 * height for p in mine]
        inks = [float(p.ink.sum()) for p in mine]
        typical = max(float(median([v for v, s in zip(inks, small) if not s] or [1.0])), 1e-6)
        short += small
        mass += [v / typical for v in inks]
    joined = [join(pieces[a:b + 1]) for a, b in runs]
    crops = [centre_digit(p.ink) for p in joined]  # a run over every piece: one digit, without specks and lines
    return Layout(runs, crops, [p.box for p in joined], short, [p.blob for p in pieces], clean,
                  expect, clean.shape[1], rows=rows, row_inks=row_inks, mass=mass), None


def predict_files(logits: Callable[[np.ndarray], np.ndarray], paths: Iterable[Path], top_k: int = 3,
                  batch_size: int = 256, keep_inputs: bool = False, expect: str = "auto",
                  temperature: float | None = None) -> list[dict[str, Any]]:
    """Read the digits in each file with `logits` (N×1×28×28 float32 → N×10: an ONNX session or a torch model,
    see `embed.runtime`), confidences calibrated by `temperature` (default: the reader's own `temperature`, fitted
    on its validation split); a file that cannot be read is an entry with its error, an image without a digit
    one with the reason."""
    results: list[dict[str, Any]] = []
    found: list[tuple[int, Layout, list[list[int]]]] = []
    for path, problem in expand_inputs(paths):
        result: dict[str, Any] = {"path": str(path)}
        if problem is None:
            try:
                grey, size = load_image(path, with_size=True)
                locate_into(result, grey, size, found, len(results), expect, keep_inputs)
            except UserError as e:
                problem = str(e).removeprefix(f"{path}: ")
            except Exception as e:  # noqa: BLE001 — whatever one file does, it costs its own row only
                problem = f"cannot read this image ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
        if problem:
            result["error"] = problem
        results.append(result)
        if sum(len(layout.crops) for _, layout, _ in found) >= batch_size:  # crops held stay bounded
            read_digits(logits, found, results, top_k, batch_size, keep_inputs, temperature)
            found.clear()
    return read_digits(logits, found, results, top_k, batch_size, keep_inputs, temperature)


# Finding digits costs time in proportion to the pixels, and a digit needs far fewer than a photo has: the image
# is first located shrunk to SCOUT_SIZE a side, which measures its digits' height, then located where its tallest
# mark stands DIGIT_PX tall (the scout's own layout when that is the scout; never above the working size). An
# image the scout finds nothing in is located at the working size. Chosen and measured: docs/reading.md.
SCOUT_SIZE, DIGIT_PX = 96, 64


def locate_quick(grey: np.ndarray, expect: str = "auto") -> tuple[np.ndarray, Layout | None, str | None]:
    """`locate` at the size the image's digits need (see SCOUT_SIZE); with the grey image it used."""
    h, w = grey.shape
    if not SCOUT_SIZE or max(h, w) <= 1.25 * SCOUT_SIZE:  # small already (MNIST's own format among them)
        return (grey, *locate(grey, expect))
    scout = shrink_to(grey, SCOUT_SIZE)
    layout, _ = locate(scout, expect)
    if layout is None:
        return (grey, *locate(grey, expect))
    tallest = max((bottom - top for top, bottom, _, _ in layout.boxes), default=0)
    side = SCOUT_SIZE * DIGIT_PX / max(tallest, 1)
    if side <= 1.25 * SCOUT_SIZE:
        return scout, layout, None
    if side >= 0.8 * max(h, w):
        return (grey, *locate(grey, expect))
    grey = shrink_to(grey, round(side))
    return (grey, *locate(grey, expect))


def locate_into(result: dict[str, Any], grey: np.ndarray, size: tuple[int, int], found: list, index: int,
                expect: str = "auto", keep_inputs: bool = False) -> None:
    """`locate` one image: its layout joins `found` for `read_digits`, or `result` gets the no-digit fields."""
    grey, layout, reason = locate_quick(grey, expect)
    if reason:
        result.update(text="", digit=None, confidence=None, digits=[], reason=reason)
        return
    sy, sx = size[1] / grey.shape[0], size[0] / grey.shape[1]  # to the image's own pixels
    boxes = [[round(left * sx), round(top * sy), round(right * sx), round(bottom * sy)]
             for top, bottom, left, right in layout.boxes]
    layout.scale = (sx, sy)
    found.append((index, layout, boxes))
    from mnist_tiny.reader.gate import features

    layout.features = [features(layout.ink, box) for box in layout.boxes]  # before the ink map is let go
    layout.ink = _preview(layout.ink) if keep_inputs else None


def read_digits(logits, found: list, results: list[dict[str, Any]], top_k: int = 3, batch_size: int = 256,
                keep_inputs: bool = False, temperature: float | None = None,
                gate: Any = "shipped", lines: Any = "shipped") -> list[dict[str, Any]]:
    """Classify every candidate crop of `found` ((result index, Layout, boxes in the image's pixels)) in batches,
    choose each image's reading (`Layout.best`) and fill in its result: `text` (the digits, left to right; rows
    top to bottom, joined by a newline), `digit` (a lone digit's value; null for several), `confidence` (the
    chance that the whole text is right: the digits' product), `top` (a lone digit's top-k), `digits` (each with
    its box [x0, y0, x1, y1] in the image's pixels, its row from 0 and top-k), `low_confidence` (some digit under
    LOW_CONFIDENCE)."""
    k = max(1, min(top_k, 10))
    temperature = temperature or float(getattr(logits, "temperature", 1.0))
    if gate == "shipped":
        from mnist_tiny.reader.gate import shipped_gate

        gate = shipped_gate()
    flat = [(i, j) for i, (_, layout, _) in enumerate(found) for j in range(len(layout.crops))]
    probs: dict[tuple[int, int], tuple[float, np.ndarray]] = {}
    doubt: dict[tuple[int, int], np.ndarray] = {}  # the gate's probabilities for every candidate
    for start in range(0, len(flat), batch_size):
        chunk = flat[start:start + batch_size]
        crops = np.stack([found[i][1].crops[j] for i, j in chunk])
        raw = logits(crops[:, None]).astype(np.float64)
        # The reading is chosen on the raw softmax (what the costs are in); confidences are the calibrated ones.
        for key, sure, row in zip(chunk, softmax(raw).max(1), softmax(raw / temperature)):
            probs[key] = sure, row
        if gate is not None:
            feats = np.stack([found[i][1].features[j] for i, j in chunk])
            doubt.update(zip(chunk, gate(crops, feats)))
    cuts = []  # per image: the cut the digits are read on, and the one whether it holds digits is judged on
    for i, (index, layout, boxes) in enumerate(found):
        score = np.log(np.array([probs[i, j][0] for j in range(len(layout.crops))]) + 1e-12)
        chosen = judged = layout.best(score)
        if gate is not None and len(layout.crops) > 1:
            # Whether the image holds digits at all is judged on the classifier's own cut (`judged`): a cut chosen
            # with the gate's help would find digit-like strokes in a letter. The digits are read on the other.
            chosen = layout.best(score + GATE_WEIGHT * np.log(np.array([doubt[i, j][0] for j in
                                                                          range(len(layout.crops))]) + 1e-6))
        cuts.append((chosen, judged))
    readings = read_rows(found, [chosen for chosen, _ in cuts], lines)
    for i, (index, layout, boxes) in enumerate(found):
        chosen, judged = cuts[i]
        # Each digit read: its fields, the candidate crops the gate judges it by (the one it was read from; for a
        # digit the line reader read, its row's as cut), its 28×28 and its box in the ink map.
        made: list[tuple[dict[str, Any], list[int], np.ndarray, tuple[int, int, int, int]]] = []
        for j in chosen:
            best = np.argsort(-probs[i, j][1], kind="stable")[:k]
            top = [[int(d), float(probs[i, j][1][d])] for d in best]
            made.append(({"digit": top[0][0], "confidence": top[0][1], "box": boxes[j], "top": top,
                          "row": layout.row(j)}, [j], layout.crops[j], layout.boxes[j]))
        if readings:
            made = rows_instead(layout, i, made, readings, k)
        row_number = {row: n for n, row in enumerate(sorted({d["row"] for d, *_ in made}))}  # rows read, from 0
        sx, sy = layout.scale
        digits = []
        for d, _, _, (top, bottom, left, right) in made:
            d.update(row=row_number[d["row"]], low_confidence=d["confidence"] < LOW_CONFIDENCE)
            if "box" not in d:  # read by the line reader
                d["box"] = [round(left * sx), round(top * sy), round(right * sx), round(bottom * sy)]
            digits.append(d)
        result = results[index]
        if not digits:
            result.update(text="", digit=None, confidence=None, digits=[], reason="no digit: only specks")
            continue
        result["_chosen"], result["_judged"] = [j for _, j, _, _ in made], judged
        result.update(text=text_of(digits),
                      digit=digits[0]["digit"] if len(digits) == 1 else None,
                      confidence=float(np.prod([d["confidence"] for d in digits])),
                      top=digits[0]["top"] if len(digits) == 1 else None, digits=digits,
                      low_confidence=any(d["low_confidence"] for d in digits))
        if keep_inputs:
            result["inputs"] = [crop for _, _, crop, _ in made]
            scale = layout.ink.shape[1] / layout.width
            result["ink"] = layout.ink
            result["ink_boxes"] = [tuple(round(v * scale) for v in box) for *_, box in made]
    _apply_gate(found, results, gate, doubt, probs)
    return results


def digit_rows(digits: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The digits read, row by row from the top (each row left to right, as read)."""
    rows: dict[int, list[dict[str, Any]]] = {}
    for d in digits:
        rows.setdefault(d.get("row", 0), []).append(d)
    return [rows[row] for row in sorted(rows)]


def text_of(digits: list[dict[str, Any]]) -> str:
    """The text of a reading: a row's digits left to right, rows joined by a newline."""
    return "\n".join("".join(str(d["digit"]) for d in row) for row in digit_rows(digits))


def _apply_gate(found: list, results: list[dict[str, Any]], gate: Any, doubt: dict, probs: dict) -> None:
    """What the gate (`reader.gate`) said of each digit read (`doubt`: its probabilities per (found, crop); `probs`:
    the digit model's, raw and calibrated): an image whose marks are not digits gets its reason instead of a
    reading; a mark refused among digits is flagged."""
    from mnist_tiny.reader.gate import judge

    picked = [(i, index, layout, results[index].pop("_chosen"), results[index].pop("_judged"))
              for i, (index, layout, _) in enumerate(found) if "_chosen" in results[index]]
    if gate is None or not picked:
        return
    for i, index, layout, chosen, judged in picked:
        threshold = gate.threshold_mnist if layout.as_is else gate.threshold
        # A lone mark only: among several, letters read as sure digits would pass for a number ("Hey").
        sure = np.array([probs[i, j][0] for j in judged]) if len(judged) == 1 and not layout.as_is else None
        _, reason = judge(np.array([doubt[i, j] for j in judged]), threshold, sure)
        if layout.expect == "one" and not layout.as_is:
            reason = None  # --expect one: the user says it is one digit; the gate's doubt stays a flag
        result = results[index]
        if reason:
            result.update(text="", digit=None, confidence=None, top=None, digits=[], low_confidence=False,
                          reason=reason)
            result.pop("inputs", None)
            continue
        # Read, but the gate doubts it is a digit: a flag, as low confidence is. In MNIST's format a mark is refused
        # only below what every MNIST digit clears, and flagged below what refuses a mark elsewhere. A digit the
        # line reader read has no crop of its own: the gate's doubt about any digit of its row as cut is its own.
        flag_below = gate.threshold if layout.as_is else max(gate.threshold_flag, threshold)
        for digit, crops in zip(result["digits"], chosen):
            if (p := min(float(doubt[i, j][0]) for j in crops)) < flag_below:
                digit["low_confidence"] = True
                digit["not_digit"] = 1 - p
        result["low_confidence"] = any(d["low_confidence"] for d in result["digits"])


PREVIEW = 112  # pixels across the ink map kept for `--show` (it draws 56 characters wide)


def _preview(ink: np.ndarray) -> np.ndarray:
    """The ink map shrunk to at most PREVIEW pixels across, as bytes: what `--show` draws, bounded per image."""
    h, w = ink.shape
    if w > PREVIEW:
        ink = resize_area(np.asarray(ink, dtype=np.float32), (max(1, round(h * PREVIEW / w)), PREVIEW))
    return np.clip(np.asarray(ink) * 255, 0, 255).astype(np.uint8)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def read(images, model: str | None = None, expect: str = "auto", top_k: int = 3) -> list[dict[str, Any]]:
    """`mnist-tiny predict --json` as a function: the digits or numbers in image files (a path, or several, or
    directories), read by a shipped model (default: the reader's own, READER_MODEL) on onnxruntime, without torch."""
    from mnist_tiny.embed.runtime import READER_MODEL, OnnxReader, shipped_onnx

    path = shipped_onnx(model or READER_MODEL)
    if path is None:
        raise UserError(f"model {model!r}: no shipped ONNX file to read with; `mnist-tiny models` lists them", 2)
    paths = [images] if isinstance(images, (str, Path)) else list(images)
    return predict_files(OnnxReader(path), paths, top_k=top_k, expect=expect)
