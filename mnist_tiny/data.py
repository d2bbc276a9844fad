"""MNIST as uint8 tensors in memory: read (and if asked, download) the four IDX files, split off validation.

The files live in torchvision's layout, `<data_dir>/MNIST/raw/<name>`, so an existing torchvision copy is used
as is. The download fetches the same `.gz` files torchvision does and checks each file's md5 before it is
moved into place, so a broken transfer never leaves a half-written file behind.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

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


def _missing(root: Path) -> list[str]:
    return [name for name in FILES if not (root / name).is_file()]


def download(data_dir: Path, mirror: str | None = None) -> None:
    """Fetch the missing files (`<name>.gz` from the first mirror that answers), verify md5, rename into place."""
    root = raw_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    mirrors = [mirror] if mirror else list(MIRRORS)
    for name in _missing(root):
        md5, _ = FILES[name]
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + f"/{name}.gz"
            try:
                _fetch_verified(url, root / name, md5)
                break
            except (OSError, EOFError, urllib.error.URLError, ValueError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
        else:
            raise UserError(f"could not download MNIST file {name} ({'; '.join(errors)}). " + _manual_hint(root))


def _fetch_verified(url: str, dest: Path, md5: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            with gzip.GzipFile(fileobj=response) as unzipped:
                shutil.copyfileobj(unzipped, out)
        digest = hashlib.md5(Path(tmp).read_bytes()).hexdigest()
        if digest != md5:
            raise ValueError(f"md5 {digest} does not match the expected {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _manual_hint(root: Path) -> str:
    return f"Put the four uncompressed MNIST files ({', '.join(FILES)}) into {root}, or set MNIST_TINY_DATA_DIR."


def load_mnist(data_dir: Path, download_missing: bool = True, mirror: str | None = None) -> dict[str, Split]:
    """Return {"train": 60k, "test": 10k} as uint8 image tensors and int64 labels."""
    root = raw_dir(data_dir)
    missing = _missing(root)
    if missing:
        if not download_missing:
            raise UserError(f"MNIST not found in {root} (missing {', '.join(missing)}). " + _manual_hint(root))
        download(data_dir, mirror)
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path, labels_path = root / f"{prefix}-images-idx3-ubyte", root / f"{prefix}-labels-idx1-ubyte"
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise UserError(f"{images_path}: expected N×28×28 images, found shape {tuple(images.shape)}")
        if labels.ndim != 1:
            raise UserError(f"{labels_path}: expected a 1-d label file, found shape {tuple(labels.shape)}")
        if len(images) != len(labels):
            raise UserError(f"{images_path} has {len(images):,} images but {labels_path} has {len(labels):,} labels")
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
