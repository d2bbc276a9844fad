"""The line reader (`reader.line`): a row of digits read whole with CTC, where cutting it into digits fails —
touching and overlapping digits — and what a user gets from it (boxes, rows, 28×28s) like any other reading."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA_DIR
from numbergen import number_image
from reader_eval import mnist_pool


@pytest.fixture(scope="module")
def touching(mnist):
    """60 numbers of 3–5 MNIST test digits that touch or overlap (gaps of −12% to 0 of a digit)."""
    pool = mnist_pool(str(DATA_DIR), hidden=False)
    rng = np.random.default_rng(12)
    greys, texts = [], []
    for _ in range(60):
        digits = [int(d) for d in rng.integers(0, 10, int(rng.integers(3, 6)))]
        image = number_image(digits, rng, pool, "tinted", False, (-0.12, 0.0))
        greys.append(np.asarray(image.convert("L"), np.float32) / 255)
        texts.append("".join(map(str, digits)))
    return greys, texts


def _read(greys, lines, keep_inputs=False):
    from mnist_tiny.embed.runtime import READER_MODEL, OnnxReader, shipped_onnx
    from mnist_tiny.reader.predict import locate_into, read_digits

    results, found = [], []
    for k, grey in enumerate(greys):
        result = {}
        locate_into(result, grey, grey.shape[::-1], found, k, keep_inputs=keep_inputs)
        results.append(result)
    return read_digits(OnnxReader(shipped_onnx(READER_MODEL)), found, results, keep_inputs=keep_inputs, lines=lines)


def test_the_line_reader_reads_its_own_validation_rows(mnist):
    from mnist_tiny.reader.line import shipped_lines
    from mnist_tiny.reader.line_data import make

    lines, texts = make(300, 77, True, DATA_DIR)  # MNIST training digits 55,000–59,999, never trained on
    readings = shipped_lines()(lines)
    assert np.mean([r.digits == t for r, t in zip(readings, texts)]) >= 0.93


def test_touching_digits_read_better_with_the_line_reader(touching):
    greys, texts = touching
    cut = np.mean([r.get("text") == t for r, t in zip(_read(greys, None), texts)])
    whole = np.mean([r.get("text") == t for r, t in zip(_read(greys, "shipped"), texts)])
    assert whole >= cut + 0.08 and whole >= 0.7, (cut, whole)


def test_a_row_read_whole_has_its_boxes_rows_and_crops(touching):
    greys, texts = touching
    cut = _read(greys, None)
    whole = _read(greys, "shipped", keep_inputs=True)
    changed = [k for k, (a, b) in enumerate(zip(cut, whole)) if a.get("text") != b.get("text")]
    assert changed
    for k in changed:
        result, (h, w) = whole[k], greys[k].shape
        digits = result["digits"]
        assert result["text"] == "".join(str(d["digit"]) for d in digits) and len(result["inputs"]) == len(digits)
        assert all(d["row"] == 0 and 0 <= d["confidence"] <= 1 and d["top"][0][0] == d["digit"] for d in digits)
        for d in digits:
            x0, y0, x1, y1 = d["box"]
            assert 0 <= x0 < x1 <= w + 1 and 0 <= y0 < y1 <= h + 1, (d["box"], w, h)
        assert [d["box"][0] for d in digits] == sorted(d["box"][0] for d in digits)  # left to right
        assert all(crop.shape == (28, 28) and crop.max() > 0.3 for crop in result["inputs"])


def test_line_train_writes_a_model_the_reader_loads(tmp_path, mnist):
    from mnist_tiny.reader.line import LineReader
    from mnist_tiny.reader.line_data import make

    out = tmp_path / "lines.onnx"
    done = subprocess.run([sys.executable, "-m", "mnist_tiny.reader.line_train", "--out", str(out), "--data-dir",
                           str(DATA_DIR), "--train-rows", "256", "--val-rows", "32", "--epochs", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines, _ = make(4, 5, True, DATA_DIR)
    readings = LineReader(out)(lines)
    assert len(readings) == 4 and all(0 <= r.chance <= 1 and len(r.digits) == len(r.steps) for r in readings)
