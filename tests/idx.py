"""Write small IDX files (MNIST's format) for tests."""

from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def write_tiny_mnist(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """A synthetic MNIST in torchvision's layout: class k is a bright square at a position that depends on k."""
    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 30, (n, 28, 28))
        for i, k in enumerate(labels):
            r, c = 2 + 2 * (k // 5) * 5, 2 + 5 * (k % 5)
            images[i, r:r + 8, c:c + 4] = 255
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root
