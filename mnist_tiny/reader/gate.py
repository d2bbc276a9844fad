"""The reader's gate: a small learned model that says, for each mark the reader would read as a digit, whether it
is a handwritten digit at all — or a letter or symbol, a dot, a scribble or shape, a picture.

A digit classifier has ten answers and no "none of these": a capital A is a 4 at 87%, a dot a 0 at 99%. Rules
about ink (specks, stripes, rows) cannot tell a letter from a digit; a model trained on both can. The gate belongs
to the reader, not to the classifier, so it serves a user's own 10-class model as well as ours.

It sees what the classifier sees (the 28×28 crop) and what the crop has lost: the box's shape and how solid its
ink is (a dot is round and full, a 0 has a hole, a 1 is tall). Data: `reader.gate_data`; training:
`python -m mnist_tiny.reader.gate_train`; figures: `python -m mnist_tiny.reader.bench` (docs/reading.md).
Runs on onnxruntime (the shipped `gate.onnx`), without torch.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np

CLASSES = ("digit", "letter or symbol", "dot", "scribble or shape", "picture")
REASONS = {"letter or symbol": "not a digit: a letter or symbol", "dot": "not a digit: a single dot",
           "scribble or shape": "not a digit: a scribble or a shape", "picture": "not a digit: a picture, not writing",
           "text": "not a number: text (letters or symbols)"}
N_FEATURES = 2


def features(ink: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """What the 28×28 crop no longer shows: log(height/width) of the box (a 1 is tall, a dash flat, a dot round)
    and how solid the ink is in it (a dot is full, a 0 has a hole). Nothing about the page: a digit of a number
    and a digit alone must look the same."""
    top, bottom, left, right = box
    h, w = max(1, bottom - top), max(1, right - left)
    fill = float(ink[top:bottom, left:right].sum()) / (h * w)
    return np.array([math.log(h / w), fill], np.float32)


def gate_path() -> Path:
    return Path(str(resources.files("mnist_tiny.reader") / "gate.onnx"))


class Gate:
    """`gate.onnx` on onnxruntime: crops N×1×28×28 and features N×2 → N×len(CLASSES) probabilities.
    `threshold`: below this chance of "digit", a mark is not read as one; below `threshold_flag` it is read and
    flagged (both chosen on the validation set: docs/reading.md)."""

    def __init__(self, path: Path | None = None, threads: int | None = 1):
        import json

        from mnist_tiny.reader.sessions import cpu_session

        self.path = Path(path or gate_path())
        self.session = cpu_session(self.path, threads)
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        if shapes.get("features", [None, None])[-1] != N_FEATURES or "crop" not in shapes:
            from mnist_tiny.errors import UserError

            raise UserError(f"gate {self.path}: takes {shapes}, not crop N×1×28×28 and features N×{N_FEATURES}; "
                            "retrain it with python -m mnist_tiny.reader.gate_train")
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.threshold = float(meta.get("threshold", 0.5))
        self.threshold_mnist = float(meta.get("threshold_mnist", self.threshold))  # images in MNIST's format
        self.threshold_flag = float(meta.get("threshold_flag", self.threshold))  # below it, read and flagged
        self.classes = tuple(json.loads(meta["classes"])) if "classes" in meta else CLASSES

    def __call__(self, crops: np.ndarray, feats: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {"crop": np.ascontiguousarray(crops, np.float32).reshape(-1, 1, 28, 28),
                                         "features": np.ascontiguousarray(feats, np.float32)})[0]
        z = logits - logits.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)


_GATE: dict[str, Gate | None] = {}


def shipped_gate() -> Gate | None:
    """The shipped gate, loaded once per process; None when the file is missing (a tree without it)."""
    if "gate" not in _GATE:
        _GATE["gate"] = Gate() if gate_path().is_file() else None
    return _GATE["gate"]


# Below the threshold, a lone mark the digit model reads with at least SURE (its raw softmax) is refused only under
# SURE_THRESHOLD, and read and flagged above it: odd but real digits (a looped 2, a heavy 6) that both models doubt
# a little. On validation (photo-like scans of MNIST training digits 55,000–59,999, the gate's validation pages)
# digits kept 98.45 → 99.05%, non-digits refused 90.6 → 89.5% (the rest flagged): docs/reading.md.
SURE, SURE_THRESHOLD = 0.9, 0.01


def judge(probs: np.ndarray, threshold: float, sure: np.ndarray | None = None) -> tuple[list[bool], str | None]:
    """For one image's marks (their gate probabilities; `sure`: the digit model's confidence in each, raw): which
    are not digits, and the reason when the image holds none to read — every mark refused (its likeliest kind
    names the reason; several letters are text), or most of three or more marks refused (a word, not a number)."""
    if sure is None:
        refused = [float(p[0]) < threshold for p in probs]
    else:
        refused = [float(p[0]) < (min(threshold, SURE_THRESHOLD) if s >= SURE else threshold)
                   for p, s in zip(probs, sure)]
    if not refused or not any(refused):
        return refused, None
    kinds = [CLASSES[1 + int(np.argmax(p[1:]))] for p, r in zip(probs, refused) if r]
    if all(refused):
        if len(refused) >= 2 and kinds.count("letter or symbol") >= 2:
            return refused, REASONS["text"]
        return refused, REASONS[max(set(kinds), key=kinds.count)]
    if len(refused) >= 3 and sum(refused) * 2 > len(refused):
        return refused, REASONS["text"]
    return refused, None
