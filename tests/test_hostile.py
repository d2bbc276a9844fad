"""Hostile and broken input: refuse with one line naming the file, run no foreign code, lose nothing."""

import io
import json
import os
import pathlib
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from idx import write_tiny_mnist
from PIL import Image
from typer.testing import CliRunner

import mnist_tiny
from mnist_tiny.training import checkpoint as ckpt
from mnist_tiny.cli.app import app


class Payload:
    """Unpickling this calls Path.touch(marker): proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _one_line_error(result, *words):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert lines, result.output
    for word in words:
        assert word in result.output, (word, result.output)


# ---------------------------------------------------------------- checkpoints

def test_pickled_code_payload_is_refused_and_never_runs(tmp_path, trained_run):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    state = torch.load(trained_run / "best.pt", weights_only=True)
    state["settings"] = Payload(marker)
    torch.save(state, evil)
    for args in (["eval", "--checkpoint", str(evil)], ["predict", str(evil), "--checkpoint", str(evil)],
                 ["params", "--checkpoint", str(evil)], ["train", "--resume", str(evil)]):
        result = CliRunner().invoke(app, args)
        _one_line_error(result, str(evil), "refused")
    assert not marker.exists()
    assert ckpt.read_checkpoint(trained_run / "best.pt")  # the loader itself still works


@pytest.mark.parametrize("make, words", [
    (lambda good, p: p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2]), ["not a readable"]),
    (lambda good, p: p.write_bytes(b""), ["empty file"]),
    (lambda good, p: p.write_text("definitely not a checkpoint"), ["not a readable"]),
    (lambda good, p: torch.save({"conv.weight": "not a tensor"}, p), ["not a mnist-tiny checkpoint"]),
    (lambda good, p: torch.save([torch.zeros(3)], p), ["not a mnist-tiny checkpoint"]),
    (lambda good, p: torch.save({**torch.load(good, weights_only=True), "model": "s6-attention"}, p),
     ["weights do not fit", "s6-attention"]),
    (lambda good, p: torch.save({**torch.load(good, weights_only=True), "model": "resnet50"}, p), ["unknown model"]),
    (lambda good, p: p.mkdir(), ["is a directory"]),
    (lambda good, p: None, ["no such file"]),
])
def test_broken_checkpoints_are_one_line_naming_the_file(tmp_path, trained_run, make, words):
    bad = tmp_path / "bad.pt"
    make(trained_run / "best.pt", bad)
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(bad)])
    _one_line_error(result, str(bad), *words)
    assert result.exit_code == 1


def test_a_bare_state_dict_asks_for_its_model(tmp_path):
    bare = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(3)}, bare)
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(bare)])
    _one_line_error(result, str(bare), "names no model", "--model")
    assert result.exit_code == 2


def test_debug_flag_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    result = CliRunner().invoke(app, ["--debug", "eval", "--checkpoint", str(bad)])
    assert result.exit_code != 0 and result.exception is not None


def test_a_crash_while_saving_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "best.pt"
    ckpt.save_atomic({"v": torch.ones(3)}, target)
    before = target.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(ckpt.UserError, match="cannot write .*best.pt: disk full"):
        ckpt.save_atomic({"v": torch.zeros(3)}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


# ---------------------------------------------------------------- images

def _png_header_only(path, width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) +
                     chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def seven(mnist):
    model = mnist_tiny.get_model(mnist_tiny.DEFAULT_MODEL, pretrained=True).eval()
    images, labels = mnist["test"].images[:50], mnist["test"].labels[:50]
    with torch.no_grad():
        right = (model(images.float().unsqueeze(1) / 255).argmax(1) == labels) & (labels == 7)
    return images[right.nonzero()[0, 0]].numpy()  # a 7 the model reads right


def _hostile_files(folder, digit):
    """name -> expected digit (int) or the words of the refusal (str)."""
    folder.mkdir()
    big = np.asarray(Image.fromarray(255 - digit).resize((280, 280), Image.BILINEAR))
    cases = {}

    (folder / "empty.png").write_bytes(b"")
    cases["empty.png"] = "empty file"
    (folder / "text.png").write_text("this is not a picture")
    cases["text.png"] = "not an image"
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, "PNG")
    (folder / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    cases["truncated.png"] = "cannot decode"
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, "JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[:400])
    cases["truncated.jpg"] = "cannot decode"
    Image.new("L", (1, 1), 255).save(folder / "one-pixel.png")
    cases["one-pixel.png"] = "no digit"
    Image.new("RGB", (200, 200), "white").save(folder / "all-white.png")
    cases["all-white.png"] = "no digit"
    Image.new("L", (200, 200), 0).save(folder / "all-black.png")
    cases["all-black.png"] = "no digit"
    _png_header_only(folder / "huge.png", 20000, 20000)
    cases["huge.png"] = "too large"

    sixteen = Image.fromarray(digit.astype(np.uint16) * 257)
    assert sixteen.mode.startswith("I;16")
    sixteen.save(folder / "sixteen-bit.png")
    cases["sixteen-bit.png"] = 7
    Image.fromarray(big).convert("P", palette=Image.ADAPTIVE, colors=16).save(folder / "palette.png")
    cases["palette.png"] = 7
    frames = [Image.fromarray(big).convert("P"), Image.new("P", big.shape[::-1], 0)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    cases["animated.gif"] = 7
    Image.fromarray(big).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    cases["cmyk.jpg"] = 7
    # Stored rotated by 90°; the EXIF orientation tag (6 = rotate 90° clockwise to view) puts it upright again.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(big).rotate(90, expand=True).save(folder / "exif-rotated.jpg", exif=exif, quality=95)
    cases["exif-rotated.jpg"] = 7
    Image.fromarray(big).save(folder / "plain.webp")
    cases["plain.webp"] = 7
    # Only the paper's exact white keyed transparent: the anti-aliased halo stays opaque.
    keyed = Image.fromarray(big).convert("P", palette=Image.ADAPTIVE, colors=32)
    white = max(range(32), key=lambda i: sum(keyed.getpalette()[3 * i:3 * i + 3]))
    keyed.save(folder / "white-keyed-palette.png", transparency=white)
    cases["white-keyed-palette.png"] = 7
    rgba = np.dstack([big, big, big, np.where(big >= 250, 0, 255)]).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "white-keyed-rgba.png")
    cases["white-keyed-rgba.png"] = 7
    # Not files: each named, none skipped in silence.
    os.symlink("loop.png", folder / "loop.png")
    cases["loop.png"] = "symbolic link loop"
    os.symlink("gone.png", folder / "dangling.png")
    cases["dangling.png"] = "dangling symbolic link"
    os.mkfifo(folder / "fifo.png")
    cases["fifo.png"] = "is a pipe"
    return cases


def test_hostile_images_each_refused_or_read_and_the_rest_still_predicted(tmp_path, seven):
    cases = _hostile_files(tmp_path / "inbox", seven)
    empty_dir = tmp_path / "nothing-here"
    empty_dir.mkdir()
    missing = tmp_path / "missing.png"
    cases[missing.name], cases[empty_dir.name] = "no such file", "no image files"
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "inbox"), str(missing), str(empty_dir), "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    rows = {pathlib.Path(r["path"]).name: r for r in json.loads(result.stdout)}
    assert set(rows) == set(cases)
    for name, expected in cases.items():
        if isinstance(expected, int):
            assert rows[name].get("digit") == expected, (name, rows[name])
        elif expected == "no digit":  # readable, but nothing to read: a reason, not an error
            assert rows[name]["text"] == "" and "error" not in rows[name], (name, rows[name])
            assert rows[name]["reason"].startswith("no digit"), (name, rows[name])
        else:
            assert expected in rows[name].get("error", ""), (name, rows[name])
    # stderr: one line per refused file, each naming it
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == sum(isinstance(v, str) and v != "no digit" for v in cases.values())


def test_predict_json_stays_valid_when_everything_fails(tmp_path):
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "nope.png"), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [{"path": str(tmp_path / "nope.png"), "error": "no such file"}]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
              array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=64)))
def test_preprocess_never_crashes_and_returns_a_valid_image(array):
    out = mnist_tiny.preprocess(array)
    assert out.shape == (1, 28, 28) and out.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("value", [0, 1, 255, np.nan, np.inf, -1e30])
def test_preprocess_constant_images_are_blank(value):
    out = mnist_tiny.preprocess(np.full((40, 30), value, dtype=np.float64))
    assert out.shape == (1, 28, 28) and not out.any()


# ---------------------------------------------------------------- data

def test_corrupt_dataset_is_named_and_not_downloaded_over(tmp_path):
    write_tiny_mnist(tmp_path)
    labels = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-7])
    before = labels.read_bytes()
    result = CliRunner().invoke(app, ["train", "--data-dir", str(tmp_path), "--epochs", "1", "--out",
                                      str(tmp_path / "run"), "--set", "download=true",
                                      "--set", "mirror=http://127.0.0.1:9/"])
    _one_line_error(result, str(labels), "truncated or corrupt")
    assert labels.read_bytes() == before


# ---------------------------------------------------------------- resume writes only into its own run

def test_resume_from_a_last_pt_outside_its_run_directory_is_refused_and_touches_nothing(tmp_path, trained_run):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "last.pt").write_bytes((trained_run / "last.pt").read_bytes())
    keep = {"best.pt": b"another run's weights", "summary.json": b'{"mine": true}', "curves.png": b"png"}
    for name, data in keep.items():
        (shared / name).write_bytes(data)
    result = CliRunner().invoke(app, ["train", "--resume", str(shared / "last.pt")])
    _one_line_error(result, "not this run's directory")
    assert result.exit_code == 2
    assert {name: (shared / name).read_bytes() for name in keep} == keep
    assert sorted(p.name for p in shared.iterdir()) == sorted([*keep, "last.pt"])

    other = tmp_path / "other"
    other.mkdir()
    (other / "last.pt").write_bytes((trained_run / "last.pt").read_bytes())
    settings = json.loads((trained_run / "settings.json").read_text())
    (other / "settings.json").write_text(json.dumps({**settings, "seed": settings["seed"] + 1}))
    result = CliRunner().invoke(app, ["train", "--resume", str(other / "last.pt")])
    _one_line_error(result, "holds another run", "seed")


def test_resuming_a_finished_run_says_so(trained_run):
    before = (trained_run / "summary.json").read_bytes()
    result = CliRunner().invoke(app, ["train", "--resume", str(trained_run / "last.pt")])
    _one_line_error(result, "already finished")
    assert (trained_run / "summary.json").read_bytes() == before


def test_json_output_never_holds_nan():
    from mnist_tiny.cli.app import _finite

    data = {"loss": float("nan"), "rows": [1.0, float("inf"), {"x": -float("inf")}], "ok": 0.5}
    assert _finite(data) == {"loss": None, "rows": [1.0, None, {"x": None}], "ok": 0.5}
    json.dumps(_finite(data), allow_nan=False)  # strict JSON


def test_weights_that_are_not_finite_are_refused_at_load(tmp_path, trained_run):
    for key_end, value in (("weight", float("nan")), ("running_var", -1.0)):
        state = torch.load(trained_run / "best.pt", weights_only=True)
        key = next(k for k in state["state_dict"] if k.endswith(key_end))
        state["state_dict"][key] = torch.full_like(state["state_dict"][key], value)
        bad = tmp_path / f"bad-{key_end}.pt"
        torch.save(state, bad)
        result = CliRunner().invoke(app, ["eval", "--checkpoint", str(bad), "--json"])
        _one_line_error(result, str(bad), key)
        assert result.exit_code == 1 and result.stdout == ""
