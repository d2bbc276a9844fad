import gzip
import hashlib
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from idx import write_idx, write_tiny_mnist

from mnist_tiny.data import mnist as data
from mnist_tiny.errors import UserError


def test_real_mnist_shapes_and_split(mnist):
    assert mnist["train"].images.shape == (60000, 28, 28) and mnist["train"].images.dtype == torch.uint8
    assert mnist["test"].images.shape == (10000, 28, 28)
    train, val = data.train_val_split(mnist["train"], 5000, seed=0)
    assert (len(train), len(val)) == (55000, 5000)
    again_train, again_val = data.train_val_split(mnist["train"], 5000, seed=0)
    assert torch.equal(val.labels, again_val.labels) and torch.equal(val.images, again_val.images)
    other_train, other_val = data.train_val_split(mnist["train"], 5000, seed=1)
    assert not torch.equal(val.images, other_val.images)
    assert len(data.train_val_split(mnist["train"], 5000, 0, subset=1234)[0]) == 1234


def test_idx_files_parse_but_a_set_of_the_wrong_size_is_not_mnist(tmp_path):
    write_tiny_mnist(tmp_path, 120, 40)
    raw = tmp_path / "MNIST" / "raw"
    assert data.read_idx(raw / "train-images-idx3-ubyte").shape == (120, 28, 28)
    assert data.read_idx(raw / "t10k-labels-idx1-ubyte").shape == (40,)
    with pytest.raises(UserError, match="train-images-idx3-ubyte: holds 120 images; MNIST's train set has 60,000"):
        data.load_mnist(tmp_path, download_missing=False)


def test_missing_data_without_download_names_the_four_files(tmp_path):
    with pytest.raises(UserError) as e:
        data.load_mnist(tmp_path, download_missing=False)
    message = str(e.value)
    for name in data.FILES:
        assert name in message
    assert str(tmp_path / "MNIST" / "raw") in message


@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), "truncated or corrupt"),
    (lambda p: p.write_bytes(b"hello, I am text"), "bad header"),
    (lambda p: p.write_bytes(b""), "bad header"),
])
def test_damaged_idx_file_is_named(tmp_path, damage, words):
    write_tiny_mnist(tmp_path)
    target = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    damage(target)
    with pytest.raises(UserError) as e:
        data.load_mnist(tmp_path, download_missing=False)
    assert str(target) in str(e.value) and words in str(e.value)


def test_image_and_label_counts_must_agree(tmp_path):
    import numpy as np

    from conftest import DATA_DIR

    write_tiny_mnist(tmp_path, 100, 40)
    raw = tmp_path / "MNIST" / "raw"
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):  # the real training set
        (raw / name).unlink()
        (raw / name).symlink_to(DATA_DIR / "MNIST" / "raw" / name)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(39))
    with pytest.raises(UserError, match="40 images but .*t10k-labels-idx1-ubyte has 39 labels"):
        data.load_mnist(tmp_path, download_missing=False)


@pytest.fixture
def mirror(tmp_path, mnist):
    """A local HTTP server holding MNIST's four .gz files, as the real mirrors do."""
    from conftest import DATA_DIR

    served = tmp_path / "served"
    served.mkdir()
    for name in data.FILES:
        with open(DATA_DIR / "MNIST" / "raw" / name, "rb") as src, gzip.open(served / f"{name}.gz", "wb", 1) as dst:
            shutil.copyfileobj(src, dst)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_from_a_mirror_verifies_and_loads(tmp_path, mirror):
    served, url = mirror
    target = tmp_path / "data"
    splits = data.load_mnist(target, download_missing=True, mirror=url)
    assert len(splits["train"]) == 60000 and len(splits["test"]) == 10000
    for name, (md5, _) in data.FILES.items():
        assert hashlib.md5((target / "MNIST" / "raw" / name).read_bytes()).hexdigest() == md5


def test_download_with_wrong_content_leaves_nothing_behind(tmp_path, mirror):
    served, url = mirror
    with gzip.open(served / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\0\0\x08\x01" + (5).to_bytes(4, "big") + bytes(5))
    target = tmp_path / "data"
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.*md5"):
        data.load_mnist(target, download_missing=True, mirror=url)
    raw = target / "MNIST" / "raw"
    assert not (raw / "t10k-labels-idx1-ubyte").exists()
    assert not [p for p in raw.iterdir() if p.name.endswith(".part")]


def test_unreachable_mirror_says_where_to_put_the_files(tmp_path):
    with pytest.raises(UserError) as e:
        data.load_mnist(tmp_path, download_missing=True, mirror="http://127.0.0.1:9/")
    assert "could not download" in str(e.value) and "train-images-idx3-ubyte" in str(e.value)
