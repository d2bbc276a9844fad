"""Hostile input, third round — the reader: formats (no Ghostscript), broken files among good ones, float images, empty paths, warnings."""

import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hostile3 import EXAMPLES, SCRIPT
from mnist_tiny.cli.app import app


# the reader: formats, Ghostscript, broken files

@pytest.fixture()
def fake_ghostscript(tmp_path, monkeypatch):
    """A `gs` first on PATH that leaves a mark if anything ever runs it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mark = tmp_path / "gs-ran"
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\ntouch {mark}\nexit 1\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return mark


def test_postscript_never_reaches_ghostscript_and_broken_files_cost_their_own_row(tmp_path, fake_ghostscript):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = (EXAMPLES / "marker-8.png").read_bytes()
    (folder / "a-good.png").write_bytes(good)
    (folder / "b-postscript.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
                                              b"(/tmp/x) (w) file closefile showpage\n")
    (folder / "c-truncated.png").write_bytes(good[: len(good) // 3])
    (folder / "d-blp.png").write_bytes(b"BLP2" + bytes(300))
    (folder / "e-avif.png").write_bytes(b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + bytes(100))
    (folder / "f-good.png").write_bytes(good)
    result = subprocess.run([SCRIPT, "predict", str(folder), "--json"], capture_output=True, text=True, timeout=120,
                            env=os.environ)
    assert result.returncode == 1  # some files could not be read
    rows = json.loads(result.stdout)
    assert [r.get("digit") for r in rows] == [8, None, None, None, None, 8]
    assert all("error" in r for r in rows[1:5]), rows
    assert "format the reader opens" in rows[1]["error"]
    assert "Traceback" not in result.stderr
    assert not fake_ghostscript.exists()


def test_a_float_image_with_a_nan_pixel_is_read_not_blank(tmp_path, mnist):
    digit = mnist["test"].images[0].numpy().astype(np.float32) / 255  # a 7
    page = np.ones((84, 84), np.float32)
    page[28:56, 28:56] = 1 - digit
    page[3, 3] = np.nan
    Image.fromarray(page, "F").save(tmp_path / "nan.tif")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "nan.tif"), "--json"])
    row = json.loads(result.output)[0]
    assert row.get("digit") == 7, row


def test_an_empty_path_is_not_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.png").write_bytes((EXAMPLES / "marker-8.png").read_bytes())
    result = CliRunner().invoke(app, ["predict", "", "--json"])
    rows = json.loads(result.stdout)
    assert result.exit_code == 1 and len(rows) == 1 and "empty path" in rows[0]["error"]


def test_what_pillow_warns_about_a_file_never_reaches_the_log(tmp_path):
    """Pillow warns about odd files (here a palette with byte transparency); per request, on a server, such
    warnings filled the log. The reader keeps them to itself."""
    image = Image.open(EXAMPLES / "marker-8.png").convert("L").convert("P")
    image.save(tmp_path / "odd.png", transparency=bytes([255] * 128 + [0] * 128))
    import warnings

    from mnist_tiny.reader.images import load_image

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that leaked out would fail here
        assert load_image(tmp_path / "odd.png").shape




def test_a_request_of_large_pngs_decodes_one_at_most(monkeypatch):
    """Each image spends the request's pixel budget before it decodes. A PNG's orientation was read first, and
    Pillow decodes a whole PNG to look for an eXIf chunk after its pixels: eight 36-megapixel PNGs of 40 KB each
    (a blank page compresses that well) were all decoded before the budget refused the second."""
    import io

    from PIL import ImageFile

    from mnist_tiny.embed.server import read_uploads
    from mnist_tiny.reader.images import MAX_PIXELS, PixelBudget

    buffer = io.BytesIO()
    Image.new("L", (6000, 6000), 255).save(buffer, "PNG")
    decodes = []
    prepare = ImageFile.ImageFile.load_prepare
    monkeypatch.setattr(ImageFile.ImageFile, "load_prepare", lambda self: (decodes.append(self.size), prepare(self)))
    uploads = [(f"page-{i}.png", buffer.getvalue()) for i in range(8)]
    rows = read_uploads(lambda x: np.zeros((len(x), 10), np.float32), uploads, 3, "auto", False,
                        PixelBudget(MAX_PIXELS))
    assert len(decodes) == 1, decodes
    assert sum("budget" in r.get("error", "") for r in rows) == 7, rows
