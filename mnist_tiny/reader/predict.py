"""Read digits from image files: expand directories, preprocess each file, classify them in batches.

A file that cannot be read becomes an `{"path", "error"}` entry; the other files are still predicted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch

from mnist_tiny.errors import UserError, require_file
from mnist_tiny.reader.images import preprocess

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


def predict_files(model: torch.nn.Module, paths: Iterable[Path], top_k: int = 3, batch_size: int = 256,
                  keep_inputs: bool = False) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    pending: list[tuple[int, torch.Tensor]] = []
    for path, problem in expand_inputs(paths):
        if problem is None:
            try:
                tensor = preprocess(path)
                if not tensor.any():
                    raise UserError(f"{path}: no digit found (blank or uniform image)")
                pending.append((len(results), tensor))
            except UserError as e:
                problem = str(e).removeprefix(f"{path}: ")
        results.append({"path": str(path), "error": problem} if problem else {"path": str(path)})

    model.eval()
    k = max(1, min(top_k, 10))
    for start in range(0, len(pending), batch_size):
        chunk = pending[start:start + batch_size]
        with torch.inference_mode():
            probs = torch.softmax(model(torch.stack([t for _, t in chunk])).float(), dim=1)
        p_top, d_top = probs.topk(k, dim=1)
        for (index, tensor), ps, ds in zip(chunk, p_top.tolist(), d_top.tolist()):
            results[index].update(digit=ds[0], confidence=ps[0], top=[[d, p] for d, p in zip(ds, ps)])
            if keep_inputs:
                results[index]["input"] = tensor[0]
    return results
