"""MNIST as uint8 tensors in memory: read (and if asked, download) the four IDX files, split off validation.

The files live in torchvision's layout, `<data_dir>/MNIST/raw/<name>`, so an existing torchvision copy is used
as is. The download fetches the same `.gz` files torchvision does and checks each file's md5 before it is
moved into place, so a broken transfer never leaves a half-written file behind.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnist_tiny.errors import UserError

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
# name -> (md5 of the uncompressed file, expected IDX shape)
FILES = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", (60000,)),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", (10000,)),
}


@dataclass
class Split:
    images: torch.Tensor  # N×28×28 uint8
    labels: torch.Tensor  # N int64

    def __len__(self) -> int:
        return len(self.labels)


def raw_dir(data_dir: Path) -> Path:
    return Path(data_dir).expanduser() / "MNIST" / "raw"


def read_idx(path: Path) -> torch.Tensor:
    """Parse one IDX file (unsigned-byte data only, as MNIST uses); any damage is a UserError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise UserError(f"{path}: not an unsigned-byte IDX file (bad header)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise UserError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise UserError(f"{path}: {len(data):,} bytes but its header promises {expected:,} (truncated or corrupt)")
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy())


def holds_mnist(data_dir) -> bool:
    """Whether `data_dir` (a path or a recorded string) has the four files in torchvision's layout."""
    if not isinstance(data_dir, (str, Path)) or not str(data_dir):
        return False
    return not _missing(raw_dir(Path(data_dir)))


def _missing(root: Path) -> list[str]:
    return [name for name in FILES if not (root / name).is_file()]


def file_size(name: str) -> int:
    """Bytes of the uncompressed IDX file: its header and one byte per value."""
    shape = FILES[name][1]
    return 4 + 4 * len(shape) + int(np.prod(shape))


# A download is bounded in time as well as size: a mirror that drips a byte at a time must not hang `train`.
DOWNLOAD_SECONDS = 300
READ_TIMEOUT = 30
CHUNK = 1 << 16


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def download(data_dir: Path, mirror: str | None = None, say=_say) -> None:
    """Fetch the missing files (`<name>.gz` beside them, else from the first mirror that answers), verify md5,
    rename into place. A `.gz` torchvision left in the folder is used without any network."""
    root = raw_dir(data_dir)
    created = [p for p in (root, *root.parents) if not p.exists()]  # deepest first: what a failure takes back
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"data directory {root}: cannot create ({e.strerror})") from None
    try:
        _download_into(root, mirror, say)
    except BaseException:
        for folder in created:  # a download that failed leaves no empty folders where the user did not make any
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _download_into(root: Path, mirror: str | None, say) -> None:
    _remove_stale_parts(root)
    mirrors = [mirror] if mirror else list(MIRRORS)
    with _cleanup_on_sigterm():
        unpack_local(root, say)
        for name in _missing(root):
            errors = []
            for base in mirrors:
                url = base.rstrip("/") + f"/{name}.gz"
                say(f"downloading {url} …")
                try:
                    with urllib.request.urlopen(url, timeout=READ_TIMEOUT) as response:
                        _unpack(response, root / name, name)
                    break
                except (OSError, EOFError, urllib.error.URLError, ValueError) as e:
                    errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
            else:
                raise UserError(f"could not download MNIST file {name} ({'; '.join(errors)}). " + _manual_hint(root))


def unpack_local(root: Path, say=_say) -> None:
    """Uncompress the `<name>.gz` files a torchvision download leaves beside the missing ones (no network)."""
    with _cleanup_on_sigterm():
        for name in _missing(root):
            local = root / f"{name}.gz"
            if local.is_file():
                try:
                    with open(local, "rb") as stream:
                        _unpack(stream, root / name, name)
                except (OSError, EOFError, ValueError) as e:
                    say(f"warning: {local}: {e}; not used")


def _unpack(stream, dest: Path, name: str) -> None:
    """Gunzip `stream` into a `.part` file beside `dest` within DOWNLOAD_SECONDS and no larger than MNIST's file,
    check its md5, then rename it into place; any failure leaves nothing behind."""
    size, md5 = file_size(name), FILES[name][0]
    deadline = time.monotonic() + DOWNLOAD_SECONDS
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    digest, written = hashlib.md5(), 0
    try:
        with os.fdopen(fd, "wb") as out, gzip.GzipFile(fileobj=_Bounded(stream, size + CHUNK, deadline)) as unzipped:
            while chunk := unzipped.read(CHUNK):
                written += len(chunk)
                if written > size:
                    raise ValueError(f"larger than MNIST's {size:,}-byte file; refused")
                if time.monotonic() > deadline:
                    raise ValueError(f"took longer than {DOWNLOAD_SECONDS} s; gave up")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise ValueError(f"md5 {digest.hexdigest()} does not match the expected {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _Bounded:
    """A read-only stream that refuses to go past `limit` bytes or `deadline` (compressed data of an IDX file
    is never larger than the file itself, plus gzip's framing)."""

    def __init__(self, raw, limit: int, deadline: float):
        self.raw, self.left, self.deadline = raw, limit, deadline

    def read(self, n: int = -1) -> bytes:
        if time.monotonic() > self.deadline:
            raise ValueError(f"took longer than {DOWNLOAD_SECONDS} s; gave up")
        n = CHUNK if n is None or n < 0 else min(n, CHUNK)
        # read1: what one receive brings. read(n) waits for all n bytes, so a mirror that drips a byte at a time
        # would keep it past the deadline, which is only checked between reads.
        data = getattr(self.raw, "read1", self.raw.read)(min(n, self.left + 1))
        self.left -= len(data)
        if self.left < 0:
            raise ValueError("compressed data larger than MNIST's file; refused")
        return data


def _remove_stale_parts(root: Path) -> None:
    """`.part` files of a download that was killed (SIGKILL leaves them; SIGTERM is cleaned up as it happens)."""
    for part in root.glob(".*.part"):
        try:
            if time.time() - part.stat().st_mtime > DOWNLOAD_SECONDS:
                part.unlink()
        except OSError:
            pass


@contextmanager
def _cleanup_on_sigterm():
    """SIGTERM during a download unwinds like Ctrl-C, so the `.part` file is removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _manual_hint(root: Path) -> str:
    return (f"Put the four uncompressed MNIST files ({', '.join(FILES)}) into {root}, "
            "or point --data-dir (or MNIST_TINY_DATA_DIR) at the folder that holds MNIST/raw/.")


def verify(root: Path) -> None:
    """md5 of each of the four files against MNIST's published ones."""
    for name, (md5, _) in FILES.items():
        digest = hashlib.md5()
        with open(root / name, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != md5:
            raise UserError(f"{root / name}: md5 {digest.hexdigest()} is not MNIST's ({md5}); "
                            "the file was changed or replaced")


def load_mnist(data_dir: Path, download_missing: bool = True, mirror: str | None = None,
               verify_md5: bool = False, test: bool = True) -> dict[str, Split]:
    """Return {"train": 60k, "test": 10k} as uint8 image tensors and int64 labels (without "test" when `test` is
    false: a search's runs never read the test files).

    The counts are always checked (a training file swapped for the test file would otherwise be trained and
    "tested" on the same images); `verify_md5` also checks every byte."""
    root = raw_dir(data_dir)
    missing = _missing(root)
    if missing and root.is_dir():
        unpack_local(root)
        missing = _missing(root)
    if missing:
        if not download_missing:
            raise UserError(f"MNIST not found in {root} (missing {', '.join(missing)}). " + _manual_hint(root))
        download(data_dir, mirror)
    if verify_md5:
        verify(root)
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k"))[:2 if test else 1]:
        images_path, labels_path = root / f"{prefix}-images-idx3-ubyte", root / f"{prefix}-labels-idx1-ubyte"
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise UserError(f"{images_path}: expected N×28×28 images, found shape {tuple(images.shape)}")
        if labels.ndim != 1:
            raise UserError(f"{labels_path}: expected a 1-d label file, found shape {tuple(labels.shape)}")
        if len(images) != len(labels):
            raise UserError(f"{images_path} has {len(images):,} images but {labels_path} has {len(labels):,} labels")
        expected = FILES[f"{prefix}-labels-idx1-ubyte"][1][0]
        if len(labels) != expected:
            other = "test" if split == "train" else "training"
            hint = f" (is it the {other} set's file?)" if len(labels) == 70_000 - expected else ""
            raise UserError(f"{images_path}: holds {len(images):,} images; MNIST's {split} set has "
                            f"{expected:,}{hint}")
        if len(labels) and int(labels.max()) > 9:
            raise UserError(f"{labels_path}: label {int(labels.max())} is not a digit (corrupt file)")
        splits[split] = Split(images, labels.long())
    return splits


def train_val_split(train: Split, val_size: int, seed: int, subset: int | None = None) -> tuple[Split, Split]:
    """Hold out `val_size` seeded-random training images for validation; `subset` keeps the first N of the rest.

    The split depends only on the seed and the sizes, so `eval --split val` sees the same images `train` did.
    """
    if val_size >= len(train):
        raise UserError(f"val_size {val_size} leaves no training images (the training set has {len(train)})", 2)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_size].sort().values, order[val_size:].sort().values
    if subset is not None:
        train_idx = train_idx[:subset]
    return Split(train.images[train_idx], train.labels[train_idx]), Split(train.images[val_idx], train.labels[val_idx])
