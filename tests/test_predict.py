"""`predict` on the images people have. Uses the default model's shipped weights, as a user would."""

import json

import numpy as np
import pytest
import torch
from imagegen import photo_like_scan
from PIL import Image
from typer.testing import CliRunner

import mnist_tiny
from mnist_tiny.cli.app import app

N = 50


@pytest.fixture(scope="module")
def digits(mnist):
    # 50 test digits the shipped model gets right on the raw tensors, so the files test the preprocessing alone.
    model = mnist_tiny.get_model(mnist_tiny.DEFAULT_MODEL, pretrained=True).eval()
    images, labels = mnist["test"].images[:400], mnist["test"].labels[:400]
    with torch.no_grad():
        right = model(images.float().unsqueeze(1) / 255).argmax(1) == labels
    keep = right.nonzero().flatten()[:N]
    return images[keep].numpy(), labels[keep].tolist()


def _write(folder, digits, transform, suffix=".png", **save):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (image, label) in enumerate(zip(*digits)):
        transform(image, rng).save(folder / f"{i:03d}_{label}{suffix}", **save)
    return folder


def _score(folder):
    result = CliRunner().invoke(app, ["predict", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == N
    return sum(row["digit"] == int(row["path"][-5]) for row in rows)


def _inverted(a, rng):
    return Image.fromarray(255 - a)


def _big_canvas(a, rng):
    canvas = np.zeros((300, 400), np.uint8)
    digit = np.asarray(Image.fromarray(a).resize((112, 112), Image.BILINEAR))
    canvas[150:262, 40:152] = digit  # off-centre, 4× the size
    return Image.fromarray(canvas)


def _rgb_dark_ink(a, rng):
    grey = 255 - a.astype(np.float64)
    rgb = np.stack([grey * 0.95, grey * 0.9, grey * 0.8], 2)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def _rgba_transparent(a, rng):
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = a  # black ink whose alpha is the stroke, on a transparent background
    return Image.fromarray(rgba, "RGBA")


@pytest.mark.parametrize("name, transform", [
    ("plain", lambda a, rng: Image.fromarray(a)),
    ("inverted", _inverted),
    ("big-canvas-off-centre", _big_canvas),
    ("rgb-dark-ink", _rgb_dark_ink),
    ("rgba-transparent", _rgba_transparent),
])
def test_mnist_digits_saved_as_images_are_read_right(tmp_path, digits, name, transform):
    assert _score(_write(tmp_path / name, digits, transform)) >= N - 1


def test_photo_like_scans(tmp_path, digits):
    folder = _write(tmp_path / "scans", digits, photo_like_scan, ".jpg", quality=70)
    assert _score(folder) >= N - 2  # goal ≥97%: dark ink, tinted unevenly lit paper, large canvas, JPEG


def test_table_output_show_and_top_k(tmp_path, digits):
    path = tmp_path / "seven.png"
    Image.fromarray(digits[0][0]).save(path)
    result = CliRunner().invoke(app, ["predict", str(path), "--show", "--top-k", "2"])
    assert result.exit_code == 0, result.output
    assert str(digits[1][0]) in result.stdout and "%" in result.stdout
    assert "the 28×28 the model saw" in result.stdout and "@@" in result.stdout
    data = json.loads(CliRunner().invoke(app, ["predict", str(path), "--json", "--top-k", "4"]).stdout)
    assert set(data[0]) == {"path", "text", "digit", "confidence", "top", "digits", "low_confidence"}
    assert len(data[0]["top"]) == 4 and data[0]["text"] == str(data[0]["digit"]) and len(data[0]["digits"]) == 1
    assert abs(sum(p for _, p in data[0]["top"]) - 1) < 0.5 and data[0]["top"][0][1] == data[0]["confidence"]
    x0, y0, x1, y1 = data[0]["digits"][0]["box"]  # in the image's own pixels
    assert 0 <= x0 < x1 <= 28 and 0 <= y0 < y1 <= 28 and (x1 - x0) * (y1 - y0) > 50


def test_preprocess_matches_mnist_on_mnist_digits(digits):
    images = digits[0][:20]
    processed = torch.stack([mnist_tiny.preprocess(a) for a in images])
    assert processed.shape == (20, 1, 28, 28)
    # MNIST digits are already 20×20-in-28×28 and centred: preprocessing changes them only a little.
    assert (processed[:, 0] - torch.from_numpy(images).float() / 255).abs().mean() < 0.1


@pytest.mark.parametrize("canvas, size, at", [
    ((600, 900), 420, (90, 300)),   # a digit drawn large: located on a shrunk copy
    ((480, 640), 150, (300, 60)),   # mid-sized, off-centre
    ((512, 512), 36, (400, 440)),   # small on a big page: located at the working size
])
def test_drawn_digits_of_any_size_are_read_and_boxed_in_the_images_own_pixels(tmp_path, canvas, size, at):
    from mnist_tiny.reader.images import decode_image
    from mnist_tiny.reader.predict import DIGIT_PX, locate_quick
    from mnist_tiny.reader.strokes import STROKES, drawn

    rng = np.random.default_rng(size)
    for digit in (2, 5, 7):
        ink = np.zeros(canvas, np.float32)
        ink[at[0]:at[0] + size, at[1]:at[1] + size] = drawn(STROKES[digit], rng, size, (4, 9))
        path = tmp_path / f"drawn-{size}-{digit}.png"
        Image.fromarray((250 - ink * 225).astype(np.uint8)).save(path)
        rows, cols = np.nonzero(ink > 0.5)
        truth = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        result = CliRunner().invoke(app, ["predict", str(path), "--json"])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.stdout)
        assert row["text"] == str(digit), row
        box = row["digits"][0]["box"]
        assert all(abs(b - t) <= 0.06 * size + 3 for b, t in zip(box, truth)), (box, truth)
        grey = decode_image(path.open("rb"), "png")
        used, layout, _ = locate_quick(grey)
        if size >= 150:  # what the scout is for: a large digit costs the pixels of a small one
            tallest = max(bottom - top for top, bottom, _, _ in layout.boxes)
            assert max(used.shape) < max(grey.shape) and tallest <= 1.25 * DIGIT_PX, (used.shape, tallest)
