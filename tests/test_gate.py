"""The reader knows what it sees: MNIST's own PNGs read as the model scores them, and letters, dots, scribbles and
pictures refused with a reason a person understands — by the learned gate (`reader.gate`), for any classifier."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from typer.testing import CliRunner

from conftest import REPO
from mnist_tiny.cli.app import app

SCRIPT = str(Path(sys.executable).parent / "mnist-tiny")
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # Debian's fonts-dejavu-core, on every machine here


def _page(draw, size=(160, 160)) -> Image.Image:
    image = Image.new("L", size, 245)
    draw(ImageDraw.Draw(image))
    return image


# The default, reader-6k's base, and what predict reads with.
@pytest.mark.parametrize("name", ["fast-25k", "fast-6k", "reader-6k"])
def test_mnist_pngs_read_exactly_as_the_model_scores_them(tmp_path, mnist, name):
    from mnist_tiny.embed.runtime import OnnxReader, shipped_onnx
    from mnist_tiny.reader.predict import predict_files

    index = list(range(3, 10_000, 20))  # 500 test digits
    paths = []
    for i in index:
        paths.append(tmp_path / f"{i:05d}.png")
        Image.fromarray(mnist["test"].images[i].numpy()).save(paths[-1])
    reader = OnnxReader(shipped_onnx(name))
    rows = predict_files(reader, paths)
    model = reader(mnist["test"].images[index].numpy()[:, None].astype(np.float32) / 255).argmax(1)
    read = [r.get("text") for r in rows]
    same = sum(text == str(m) for text, m in zip(read, model))
    assert same >= len(index) - 1, [(p.name, t, int(m)) for p, t, m in zip(paths, read, model) if t != str(m)]


@pytest.mark.parametrize("name, draw, reason", [
    ("letter-A", lambda d: d.text((30, 10), "A", fill=20, font=ImageFont.truetype(FONT, 120)), "a letter or symbol"),
    ("letter-K", lambda d: d.text((35, 10), "K", fill=20, font=ImageFont.truetype(FONT, 120)), "a letter or symbol"),
    ("a-dot", lambda d: d.ellipse((70, 70, 92, 92), fill=15), "a single dot"),
    ("knot", lambda d: d.line([(60, 40), (140, 60), (80, 130), (70, 50), (130, 120), (60, 40)], fill=10, width=6),
     "not a digit"),
    ("word", lambda d: d.text((5, 50), "Hey", fill=20, font=ImageFont.truetype(FONT, 60)), "not a"),
])
def test_what_is_not_a_digit_is_refused_with_its_reason(tmp_path, name, draw, reason):
    path = tmp_path / f"{name}.png"
    _page(draw, (200, 160)).save(path)
    result = CliRunner().invoke(app, ["predict", str(path), "--json"])
    row = json.loads(result.stdout)[0]
    assert result.exit_code == 1, row
    assert row["text"] == "" and row["digit"] is None and reason in row["reason"], row


def test_a_scribble_cut_into_pieces_is_at_least_flagged(tmp_path):
    """Known limit: a long scribble is cut into digit-sized pieces before the gate sees it; each piece is a stroke.
    It is read, but not trusted."""
    path = tmp_path / "scribble.png"
    _page(lambda d: d.line([(20, 80), (60, 30), (90, 120), (120, 40), (140, 130), (40, 140), (130, 20)], fill=10,
                           width=5), (200, 160)).save(path)
    row = json.loads(CliRunner().invoke(app, ["predict", str(path), "--json"]).stdout)[0]
    assert row["text"] == "" or row["low_confidence"], row


def test_digits_on_paper_still_read_and_a_users_model_gets_the_gate_too(tmp_path, trained_run):
    examples = REPO / "examples"
    result = CliRunner().invoke(app, ["predict", str(examples), "--json"])
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert rows["marker-8.png"]["text"] == "8" and rows["number-2024.jpg"]["text"] == "2024"
    assert rows["note-two-rows.jpg"]["text"] == "314\n1592"  # two rows, top to bottom
    assert rows["letter-A.png"]["text"] == "" and "letter or symbol" in rows["letter-A.png"]["reason"]
    path = tmp_path / "A.png"
    _page(lambda d: d.text((30, 10), "A", fill=20, font=ImageFont.truetype(FONT, 120))).save(path)
    theirs = subprocess.run([SCRIPT, "predict", str(path), "--checkpoint", str(trained_run / "best.pt"), "--json"],
                            capture_output=True, text=True, timeout=120)
    assert theirs.returncode == 1 and "a letter or symbol" in json.loads(theirs.stdout)[0]["reason"]


def test_the_server_refuses_a_letter_with_its_reason():
    import io

    from fastapi.testclient import TestClient

    from mnist_tiny.embed.runtime import OnnxReader, shipped_onnx
    from mnist_tiny.embed.server import create_app

    client = TestClient(create_app(OnnxReader(shipped_onnx("fast-6k")), "fast-6k"))
    buffer = io.BytesIO()
    _page(lambda d: d.text((30, 10), "A", fill=20, font=ImageFont.truetype(FONT, 120))).save(buffer, "PNG")
    answer = client.post("/predict", content=buffer.getvalue(), headers={"Content-Type": "image/png"})
    assert answer.status_code == 422 and "letter or symbol" in answer.json()["detail"]


def test_what_the_gate_doubts_is_flagged_and_few_digits_pay_for_it(mnist):
    """Between refusing and trusting: a mark whose chance of being a digit is under the gate's `threshold_flag` is
    read and flagged. On 600 one-mark images of the gate's validation sources (other writers, fonts and seeds than
    its training), non-digits are refused or flagged far more often than by refusal alone, and digits read right
    are seldom flagged."""
    from mnist_tiny.embed.runtime import READER_MODEL, OnnxReader, shipped_onnx
    from mnist_tiny.reader.bench import one_marks
    from mnist_tiny.reader.gate import shipped_gate

    gate = shipped_gate()
    assert gate.threshold_mnist <= gate.threshold < gate.threshold_flag <= 0.5
    from conftest import DATA_DIR

    figures = one_marks(OnnxReader(shipped_onnx(READER_MODEL)), DATA_DIR, 600, 4343, gate)
    assert figures["non_digits_refused_or_flagged"] >= 0.95, figures  # refusal alone: ~0.92
    # Refusal is judged on the classifier's own cut: judged on the cut chosen with the gate's help, a letter is cut
    # into strokes the gate passes as digits (refused ~0.73 on the bench, ~0.87 judged right).
    assert figures["non_digits_refused"] >= 0.83, figures
    assert figures["non_digits_refused_or_flagged"] > figures["non_digits_refused"] + 0.03, figures
    assert figures["digits_right_flagged"] <= 0.04 and figures["digits_read_right"] >= 0.97, figures


def test_digits_drawn_with_a_marker_that_fills_the_image_read(tmp_path):
    """A pad's thick stroke on a digit that fills the image: the local paper level once took the stroke's middle
    for paper in shadow and read only its edges (an 8 became a 3 or a 0). Each digit with a pen of a fifth of its
    size, dark on white, light on dark and on a transparent background."""
    from mnist_tiny.reader.strokes import STROKES, drawn

    rng = np.random.default_rng(5)
    for digit in range(10):
        ink = np.pad(drawn(STROKES[digit], rng, 220, (19, 24)), 8)
        Image.fromarray((255 - ink * 235).astype(np.uint8)).save(tmp_path / f"{digit}-white.png")
        Image.fromarray((20 + ink * 230).astype(np.uint8)).save(tmp_path / f"{digit}-dark.png")
        black = Image.new("L", ink.shape[::-1], 0)
        Image.merge("RGBA", (black, black, black, Image.fromarray((ink * 255).astype(np.uint8)))).save(
            tmp_path / f"{digit}-transparent.png")
    rows = json.loads(CliRunner().invoke(app, ["predict", str(tmp_path), "--json"]).stdout)
    wrong = [(Path(r["path"]).name, r.get("text")) for r in rows if r.get("text") != Path(r["path"]).name[0]]
    assert len(rows) == 30 and len(wrong) <= 1, wrong


def test_a_thick_digit_filling_a_small_image_is_not_taken_for_ruled_lines(tmp_path):
    """The solid columns of a thick 8 that fills a small photo once passed for ruled lines (a band of long runs
    may be 0.03 × the side + 5 px wide) and were cut out: the 8 read "81" or was refused. A line's band now
    stands out from the rows beside it; ruled and squared paper are `test_numbers`'."""
    from mnist_tiny.reader.images import paper_to_ink
    from mnist_tiny.reader.segment import remove_lines
    from mnist_tiny.reader.strokes import STROKES, drawn

    rng = np.random.default_rng(7)
    for k, digit in enumerate((0, 6, 8, 9) * 10):  # images of 89–290 px, pens of 16–24% of the digit
        size = 64 + 4 * k
        ink = np.pad(drawn(STROKES[digit], rng, size, (16, 24)), size // 5)
        Image.fromarray((242 - ink * 230).astype(np.uint8)).save(tmp_path / f"{digit}-{k:02d}.png")
        assert remove_lines(paper_to_ink(1 - ink))[1] == 0, (digit, size)
    rows = json.loads(CliRunner().invoke(app, ["predict", str(tmp_path), "--json"]).stdout)
    wrong = [(Path(r["path"]).name, r.get("text")) for r in rows if r.get("text") != Path(r["path"]).name[0]]
    assert len(rows) == 40 and not wrong, wrong
