"""Hostile and broken input, second round: nothing lost, nothing silently wrong, every resource bounded."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import DATA_DIR
from hostile3 import one_line_error as _one_line_error
from mnist_tiny.data import mnist as data
from mnist_tiny.cli.app import app
from mnist_tiny.errors import UserError

SCRIPT = str(Path(sys.executable).parent / "mnist-tiny")


def _copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


# ---------------------------------------------------------------- resuming: nothing repeated, nothing foreign

def test_resume_after_a_crash_between_row_and_checkpoint_keeps_one_row_per_epoch(tmp_path, trained_run):
    run = _copy_run(trained_run, tmp_path / "run")
    before = json.loads((run / "summary.json").read_text())
    (run / "summary.json").unlink()  # killed while scoring: the epochs are done, the summary is not
    rows = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(rows + rows.splitlines()[-1] + "\n")  # a row written twice
    result = CliRunner().invoke(app, ["train", "--resume", str(run / "last.pt")])
    assert result.exit_code == 0, result.output
    assert "after its last epoch (2): scoring only" in result.output and "epoch 3" not in result.output
    assert (run / "metrics.jsonl").read_text() == rows
    after = json.loads((run / "summary.json").read_text())
    assert after["best_test_acc"] == before["best_test_acc"] and after["history"] == before["history"]


def test_a_foreign_best_checkpoint_is_never_scored_as_the_runs_own(tmp_path, trained_run):
    run = _copy_run(trained_run, tmp_path / "run")
    (run / "summary.json").unlink()
    foreign = torch.load(run / "best.pt", weights_only=True)
    foreign["settings"]["seed"] += 1  # another run's best.pt, dropped into this folder
    torch.save(foreign, run / "best.pt")
    result = CliRunner().invoke(app, ["train", "--resume", str(run / "last.pt")])
    _one_line_error(result, str(run / "best.pt"), "not this run's best checkpoint", "seed")
    assert not (run / "summary.json").exists()


def test_a_run_directory_in_use_is_refused(tmp_path, trained_run):
    from mnist_tiny.training.rundir import RunLock

    run = _copy_run(trained_run, tmp_path / "run")
    (run / "summary.json").unlink()
    lock = RunLock(run).acquire()  # another process training in it
    try:
        before = {p.name: p.read_bytes() for p in run.iterdir()}
        result = CliRunner().invoke(app, ["train", "--resume", str(run / "last.pt")])
        _one_line_error(result, "another training process is using it", code=2)
        assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    finally:
        lock.release()
    assert CliRunner().invoke(app, ["train", "--resume", str(run / "last.pt")]).exit_code == 0


def test_resume_runs_with_the_recorded_processes_and_threads_unless_told(tmp_path, trained_run):
    from mnist_tiny.cli.app import _resume_settings
    from mnist_tiny.settings import resolve_settings

    state = torch.load(trained_run / "last.pt", weights_only=True)
    state["resume"].update(processes=2, threads=1)
    torch.save(state, tmp_path / "last.pt")
    s = _resume_settings(tmp_path / "last.pt", resolve_settings({}, environ={}), {})
    assert (s.processes, s.threads) == (2, 1)
    state["resume"].update(processes=2, threads=10_000)  # a run from a far bigger machine: threads as usual here
    torch.save(state, tmp_path / "big.pt")
    s = _resume_settings(tmp_path / "big.pt", resolve_settings({}, environ={}), {})
    assert (s.processes, s.threads) == (2, None)
    told = resolve_settings({"processes": 1}, environ={})
    assert _resume_settings(tmp_path / "last.pt", told, {"processes": 1}).processes == 1
    # the data where the run found it, when no other place is given and MNIST is still there
    assert s.data_dir == Path(state["settings"]["data_dir"])


# ---------------------------------------------------------------- data: counts always, md5 on request

def _linked_mnist(root: Path, swap: dict[str, str] | None = None) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.FILES:
        (raw / name).symlink_to(DATA_DIR / "MNIST" / "raw" / (swap or {}).get(name, name))
    return root


def test_training_files_replaced_by_the_test_files_are_refused(tmp_path, mnist):
    root = _linked_mnist(tmp_path / "d", {"train-images-idx3-ubyte": "t10k-images-idx3-ubyte",
                                          "train-labels-idx1-ubyte": "t10k-labels-idx1-ubyte"})
    result = CliRunner().invoke(app, ["train", "--data-dir", str(root), "--out", str(tmp_path / "run")])
    _one_line_error(result, "train-images-idx3-ubyte", "10,000 images", "60,000", "test set's file")
    assert not (tmp_path / "run").exists()


def test_md5_check_on_request(tmp_path, mnist):
    root = _linked_mnist(tmp_path / "d")
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    changed = bytearray(labels.read_bytes())
    changed[100] = (changed[100] + 1) % 10
    labels.unlink()
    labels.write_bytes(bytes(changed))
    assert len(data.load_mnist(root, False)["test"]) == 10_000  # same counts: loads
    result = CliRunner().invoke(app, ["eval", "--data-dir", str(root), "--set", "verify_data=true"])
    _one_line_error(result, str(labels), "md5", "not MNIST's")


# ---------------------------------------------------------------- downloads: bounded, announced, clean

class _Endless(BaseHTTPRequestHandler):
    """Serves an endless gzip stream, or drips a few bytes and then waits, per the path."""

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        if "drip" in self.server.mode:
            body = gzip.compress(b"\0" * 1000)
            try:
                for i in range(0, len(body), 4):
                    self.wfile.write(body[i:i + 4])
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass
            return
        block = gzip.compress(b"\0" * (1 << 20))
        try:
            while True:
                self.wfile.write(block)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile_mirror():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    server.daemon_threads = True
    server.mode = "endless"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_an_endless_download_stops_at_the_files_size(tmp_path, hostile_mirror):
    _, url = hostile_mirror
    with pytest.raises(UserError, match="larger than MNIST's"):
        data.download(tmp_path, url, say=lambda m: None)
    assert not (tmp_path / "MNIST").exists()  # nothing left, not even the folders the download made


def test_a_dripping_mirror_meets_a_deadline(tmp_path, hostile_mirror, monkeypatch):
    server, url = hostile_mirror
    server.mode = "drip"
    monkeypatch.setattr(data, "DOWNLOAD_SECONDS", 1.5)
    said = []
    start = time.monotonic()
    with pytest.raises(UserError, match="took longer than 1.5 s"):
        data.download(tmp_path, url, say=said.append)
    assert time.monotonic() - start < 10
    assert said and said[0].startswith("downloading http://127.0.0.1")
    assert not (tmp_path / "MNIST").exists()  # nothing left, not even the folders the download made


def test_sigterm_during_a_download_leaves_no_part_file(tmp_path, hostile_mirror):
    server, url = hostile_mirror
    server.mode = "drip"
    process = subprocess.Popen([SCRIPT, "eval", "--data-dir", str(tmp_path), "--set", "download=true",
                                "--set", f"mirror={url}"], stderr=subprocess.PIPE, text=True)
    raw = tmp_path / "MNIST" / "raw"
    deadline = time.time() + 60
    while time.time() < deadline and not (raw.is_dir() and list(raw.glob(".*.part"))):
        time.sleep(0.05)
    assert list(raw.glob(".*.part")), "the download should have started"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0 and "Traceback" not in err
    assert "downloading" in err
    assert not (tmp_path / "MNIST").exists()


def test_a_local_gz_is_used_without_any_network(tmp_path, mnist):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in data.FILES:
        if name.startswith("t10k"):
            with open(DATA_DIR / "MNIST" / "raw" / name, "rb") as f, gzip.open(raw / f"{name}.gz", "wb", 1) as g:
                shutil.copyfileobj(f, g)
        else:
            (raw / name).symlink_to(DATA_DIR / "MNIST" / "raw" / name)
    splits = data.load_mnist(tmp_path, download_missing=False)
    assert len(splits["test"]) == 10_000 and (raw / "t10k-images-idx3-ubyte").is_file()


# ---------------------------------------------------------------- checkpoints: refused before any cost

def test_a_zip_with_a_compressed_member_is_refused_before_inflating(tmp_path, trained_run):
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(trained_run / "best.pt") as good, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for member in good.infolist():
            out.writestr(member.filename, good.read(member))
        with out.open("archive/data/999", "w", force_zip64=True) as f:  # 2 GiB of zeros, ~2 MB on disk
            zeros = bytes(1 << 24)
            for _ in range(128):
                f.write(zeros)
    assert bomb.stat().st_size < 20_000_000
    result = subprocess.run([SCRIPT, "eval", "--checkpoint", str(bomb)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "compressed members" in result.stderr and str(bomb) in result.stderr


def test_torchscript_is_refused_quietly_and_safetensors_load(tmp_path, trained_run):
    from mnist_tiny.training.checkpoint import load_checkpoint

    loaded = load_checkpoint(trained_run / "best.pt")
    scripted = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated: our users' old exports are still around
        torch.jit.save(torch.jit.trace(loaded.model, torch.zeros(1, 1, 28, 28)), scripted)
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(scripted), "--model", "s6-compact"])
    _one_line_error(result, "TorchScript", "torch.save(model.state_dict()")
    assert "warn" not in result.output.lower() and "pip install" not in result.output

    # a .safetensors file, written by hand to its published layout: 8-byte header length, JSON, raw bytes
    state = {k: v.contiguous() for k, v in loaded.model.state_dict().items()}
    header, body = {}, b""
    names = {torch.float32: "F32", torch.int64: "I64"}
    for key, tensor in state.items():
        raw = tensor.numpy().tobytes()
        header[key] = {"dtype": names[tensor.dtype], "shape": list(tensor.shape),
                       "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    text = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + body)
    mine = CliRunner().invoke(app, ["eval", "--checkpoint", str(tmp_path / "model.safetensors"), "--model",
                                    "s6-compact", "--json"])
    theirs = CliRunner().invoke(app, ["eval", "--checkpoint", str(trained_run / "best.pt"), "--json"])
    assert mine.exit_code == 0, mine.output
    assert json.loads(mine.stdout)["accuracy"] == json.loads(theirs.stdout)["accuracy"]
    header["x"] = {"dtype": "F32", "shape": [10**6], "data_offsets": [0, 4 * 10**6]}
    text = json.dumps(header).encode()
    (tmp_path / "broken.safetensors").write_bytes(len(text).to_bytes(8, "little") + text + body)
    result = CliRunner().invoke(app, ["eval", "--checkpoint", str(tmp_path / "broken.safetensors"),
                                      "--model", "s6-compact"])
    _one_line_error(result, "broken safetensors", "do not fit")


def test_junk_recorded_settings_are_named(tmp_path, trained_run):
    for junk, words in (("not a table", ["not a table of settings"]),
                        ({"val_size": "many", "seed": 3}, ["recorded val_size", "invalid"])):
        state = torch.load(trained_run / "last.pt", weights_only=True)
        state["settings"] = junk
        bad = tmp_path / "junk" / "last.pt"
        bad.parent.mkdir(exist_ok=True)
        torch.save(state, bad)
        result = CliRunner().invoke(app, ["eval", "--checkpoint", str(bad), "--split", "val"])
        _one_line_error(result, str(bad), *words)
        result = CliRunner().invoke(app, ["train", "--resume", str(bad)])
        _one_line_error(result, str(bad))


@pytest.mark.parametrize("target, words", [("/dev/zero", "is a device"), ("fifo", "is a pipe")])
def test_devices_and_fifos_are_not_called_empty(tmp_path, target, words):
    if target == "fifo":
        target = str(tmp_path / "fifo.pt")
        os.mkfifo(target)
    for args in (["eval", "--checkpoint", target], ["train", "--config", target],
                 ["train", "--resume", target]):
        result = CliRunner().invoke(app, args)
        _one_line_error(result, target)
        assert "empty" not in result.output and ("is a device" in result.output or "pipe" in result.output
                                                 or "FIFO" in result.output)


def test_a_full_disk_is_a_sentence_and_keeps_the_old_checkpoint(tmp_path, trained_run, monkeypatch):
    import errno

    from mnist_tiny.training import checkpoint as ckpt

    target = tmp_path / "last.pt"
    target.write_bytes(b"previous")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.os, "fsync", full)
    with pytest.raises(UserError, match=r"cannot write .*last.pt: No space left on device \(the previous one is kept\)"):
        ckpt.save_atomic({"x": torch.zeros(3)}, target)
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


# ---------------------------------------------------------------- settings: strict, bounded, checked first

@pytest.mark.parametrize("text, words", [
    ("epochs = true\n", ["epochs = true is a boolean", "an integer"]),
    ('lr = "0.1"\n', ["lr = \"0.1\" is a string", "a number"]),
    ("train = 5\n", ["`train` must be a table"]),
    ("lr = nan\n", ["finite number"]),
    (b"epochs = 2 # \xff\xfe\n", ["not UTF-8"]),
    ("x" * 2_000_000, ["too large"]),
])
def test_config_files_are_typed_strictly(tmp_path, text, words):
    config = tmp_path / "c.toml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "run")])
    _one_line_error(result, *words, code=2)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, words", [
    (["--seed", str(2**70)], ["seed", "less than or equal to 4294967295"]),
    (["--lr", "nan"], ["lr", "finite number"]),
    (["--set", "threads=100000"], ["threads", "less than or equal to 1024"]),
    (["--set", "threads=1000"], ["threads=1000", "per core"]),
    (["--set", "processes=200"], ["processes=200", "per core"]),
])
def test_every_setting_is_checked_before_anything_is_written(tmp_path, args, words):
    result = CliRunner().invoke(app, ["train", *args, "--out", str(tmp_path / "run"), "--subset", "500"])
    _one_line_error(result, *words, code=2)
    assert not (tmp_path / "run").exists()


def test_an_out_path_that_is_not_utf8_is_refused_before_writing(tmp_path):
    name = os.fsencode(tmp_path) + b"/run-\xff"
    result = subprocess.run([os.fsencode(SCRIPT), b"train", b"--out", name, b"--subset", b"500"],
                            capture_output=True, timeout=120)
    err = result.stderr.decode(errors="replace")
    assert result.returncode == 2 and "Traceback" not in err and "not valid UTF-8" in err, err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- images: pipes read, memory bounded

def _digit_png(path: Path, digit: np.ndarray, size: int) -> None:
    Image.fromarray(255 - digit).resize((size, size), Image.BILINEAR).save(path, compress_level=1)


def test_predict_reads_a_pipe_and_a_named_fifo_without_writer_is_named(tmp_path, mnist):
    image = tmp_path / "seven.png"
    _digit_png(image, mnist["test"].images[0].numpy(), 280)  # test image 0 is a 7
    result = subprocess.run(["bash", "-c", f'"{SCRIPT}" predict <(cat "{image}") --json'], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["digit"] == 7
    fifo = tmp_path / "nobody.png"
    os.mkfifo(fifo)
    result = CliRunner().invoke(app, ["predict", str(fifo)])
    _one_line_error(result, str(fifo), "nothing was written to the pipe")


def test_a_6300_pixel_image_is_read_under_a_gigabyte(tmp_path, mnist):
    image = tmp_path / "big.png"
    big = Image.fromarray(255 - mnist["test"].images[0].numpy()).resize((6300, 6300), Image.BILINEAR)
    big.convert("RGBA").save(image, compress_level=1)  # 4 bytes a pixel: the heaviest common kind
    code = ("import resource, subprocess, sys, json; "
            "r = subprocess.run([sys.argv[1], 'predict', sys.argv[2], '--json'], capture_output=True, text=True); "
            "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr, "
            "'kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    report = json.loads(subprocess.run([sys.executable, "-c", code, SCRIPT, str(image)], capture_output=True,
                                       text=True, timeout=300).stdout)
    assert report["rc"] == 0, report["err"]
    assert json.loads(report["out"])[0]["digit"] == 7
    assert report["kb"] < 1_000_000, f"peak {report['kb'] / 1e6:.2f} GB"


def test_an_eval_report_never_overwrites_and_deep_toml_is_a_sentence(tmp_path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text("my notes")
    result = CliRunner().invoke(app, ["eval", "--report", str(report)])
    _one_line_error(result, "already holds metrics.json", code=2)
    assert (report / "metrics.json").read_text() == "my notes" and len(list(report.iterdir())) == 1
    config = tmp_path / "deep.toml"
    config.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    _one_line_error(CliRunner().invoke(app, ["train", "--config", str(config)]), "nested too deeply", code=2)
