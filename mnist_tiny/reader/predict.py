"""Read digits from image files: expand directories, preprocess each file, classify them in batches.

A file that cannot be read becomes an `{"path", "error"}` entry; the other files are still predicted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from mnist_tiny.errors import UserError, require_file
from mnist_tiny.reader.images import to_mnist

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm"}


MAX_FILES = 100_000  # per directory: memory for the results stays bounded


def expand_inputs(paths: Iterable[Path]) -> list[tuple[Path, str | None]]:
    """Files as given; directories become their image files, sorted. An empty directory is an error entry, and so
    is an image name in it that is not a readable file (a dangling link, a link loop, a FIFO): never a silent skip."""
    expanded: list[tuple[Path, str | None]] = []
    for path in map(Path, paths):
        if not path.is_dir():
            expanded.append((path, None))
            continue
        try:
            names = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as e:
            expanded.append((path, f"cannot list this directory ({e.strerror})"))
            continue
        if not names:
            expanded.append((path, f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this directory"))
        for p in names[:MAX_FILES]:
            try:
                require_file(p, str(p))
                expanded.append((p, None))
            except UserError as e:
                expanded.append((p, str(e).removeprefix(f"{p}: ")))
        if len(names) > MAX_FILES:
            expanded.append((path, f"holds {len(names):,} images; read the first {MAX_FILES:,}"))
    return expanded


def predict_files(logits: Callable[[np.ndarray], np.ndarray], paths: Iterable[Path], top_k: int = 3,
                  batch_size: int = 256, keep_inputs: bool = False) -> list[dict[str, Any]]:
    """Read each file's digit with `logits` (N×1×28×28 float32 → N×10: an ONNX session or a torch model, see
    `embed.runtime`); a file that cannot be read is an entry with its error."""
    results: list[dict[str, Any]] = []
    pending: list[tuple[int, np.ndarray]] = []
    for path, problem in expand_inputs(paths):
        if problem is None:
            try:
                image = to_mnist(path)
                if not image.any():
                    raise UserError(f"{path}: no digit found (blank or uniform image)")
                pending.append((len(results), image))
            except UserError as e:
                problem = str(e).removeprefix(f"{path}: ")
        results.append({"path": str(path), "error": problem} if problem else {"path": str(path)})
    return read_digits(logits, pending, results, top_k, batch_size, keep_inputs)


def read_digits(logits, pending: list[tuple[int, np.ndarray]], results: list[dict[str, Any]], top_k: int = 3,
                batch_size: int = 256, keep_inputs: bool = False) -> list[dict[str, Any]]:
    """Fill `results[index]` with the digit, confidence and top-k of each preprocessed 28×28 image."""
    k = max(1, min(top_k, 10))
    for start in range(0, len(pending), batch_size):
        chunk = pending[start:start + batch_size]
        probs = softmax(logits(np.stack([image for _, image in chunk])[:, None]).astype(np.float64))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        for (index, image), row, best in zip(chunk, probs, order):
            top = [[int(d), float(row[d])] for d in best]
            results[index].update(digit=top[0][0], confidence=top[0][1], top=top)
            if keep_inputs:
                results[index]["input"] = image
    return results


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
