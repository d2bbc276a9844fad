"""How well the reader reads whole numbers and refuses non-digits, on generated photo-like images.

    MNIST_TINY_DATA_DIR=../shared/data python tests/reader_eval.py --seed 1000 --count 40 --hidden

The tests use MNIST test digits 0–4,999 and seeds below 1,000; `--hidden` draws digits 5,000–9,999 with the seed
given, so a hidden set's writers and images are ones the tests (and the tuning) never saw.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from numbergen import no_digit_images, number_image, rows_image  # noqa: E402

STYLES = {  # name → (handwriting, paper, shadow, gaps)
    "mnist-tinted": ("mnist", "tinted", False, (0.05, 0.5)),
    "mnist-close": ("mnist", "tinted", False, (-0.08, 0.1)),
    "mnist-ruled": ("mnist", "ruled", False, (0.0, 0.4)),
    "mnist-squared-shadow": ("mnist", "squared", True, (0.0, 0.4)),
    "drawn-tinted": ("drawn", "tinted", False, (0.0, 0.5)),
    "drawn-ruled-shadow": ("drawn", "ruled", True, (-0.05, 0.3)),
}

ROW_STYLES = {  # numbers on 2–3 rows of one page: name → (handwriting, paper, shadow)
    "rows-mnist-tinted": ("mnist", "tinted", False),
    "rows-mnist-ruled": ("mnist", "ruled", False),
    "rows-drawn-tinted": ("drawn", "tinted", False),
    "rows-drawn-squared-shadow": ("drawn", "squared", True),
}


def mnist_pool(data_dir: str, hidden: bool, validation: bool = False) -> dict[int, list[np.ndarray]]:
    """Handwritten digits by value: MNIST test digits 0–4,999 (the tests), 5,000–9,999 (`hidden`), or, to choose
    a reader's design on (`validation`), training digits 55,000–59,999, which reader-6k never trained on."""
    from mnist_tiny.data.mnist import load_mnist

    if validation:
        train = load_mnist(Path(data_dir), False, test=False)["train"]
        images, labels = train.images[55_000:].numpy(), train.labels[55_000:].numpy()
        return {d: list(images[labels == d]) for d in range(10)}
    test = load_mnist(Path(data_dir), False)["test"]
    span = slice(5000, 10000) if hidden else slice(0, 5000)
    images, labels = test.images[span].numpy(), test.labels[span].numpy()
    return {d: list(images[labels == d]) for d in range(10)}


def write_set(folder: Path, seed: int, count: int, pool, lengths=(2, 6)) -> list[tuple[Path, str]]:
    rng = np.random.default_rng(seed)
    made = []
    for style, (hand, paper, shadow, gaps) in STYLES.items():
        for i in range(count):
            digits = [int(d) for d in rng.integers(0, 10, int(rng.integers(lengths[0], lengths[1] + 1)))]
            text = "".join(map(str, digits))
            path = folder / f"{style}-{i:03d}-{text}.jpg"
            number_image(digits, rng, pool if hand == "mnist" else None, paper, shadow, gaps).save(
                path, quality=int(rng.integers(70, 92)))
            made.append((path, text))
    return made


def write_rows(folder: Path, seed: int, count: int, pool) -> list[tuple[Path, str]]:
    """`count` pages per row style, each 2–3 rows of 2–6 digits; the text is the rows joined by newlines."""
    rng = np.random.default_rng(seed + 1)  # not the one-row sets' images
    made = []
    for style, (hand, paper, shadow) in ROW_STYLES.items():
        for i in range(count):
            rows = [[int(d) for d in rng.integers(0, 10, int(rng.integers(2, 7)))] for _ in range(int(rng.integers(2, 4)))]
            text = "\n".join("".join(map(str, row)) for row in rows)
            path = folder / f"{style}-{i:03d}-{text.replace(chr(10), '_')}.jpg"
            rows_image(rows, rng, pool if hand == "mnist" else None, paper, shadow).save(
                path, quality=int(rng.integers(70, 92)))
            made.append((path, text))
    return made


def score(made, logits, expect="auto"):
    from mnist_tiny.reader.predict import predict_files

    results = predict_files(logits, [p for p, _ in made], expect=expect)
    by_style: dict[str, list[bool]] = {}
    wrong = []
    for (path, text), r in zip(made, results):
        ok = r.get("text") == text
        by_style.setdefault(path.name.rsplit("-", 2)[0], []).append(ok)
        if not ok:
            wrong.append((path.name, r.get("text"), r.get("reason") or r.get("error")))
    return by_style, wrong


def single_digits(folder: Path, seed: int, count: int, hidden: bool, reader) -> dict:
    """Photo-like scans (tests/imagegen.py) of MNIST test digits, read as a user would (auto) and as one digit."""
    import os

    from imagegen import photo_like_scan

    from mnist_tiny.data.mnist import load_mnist
    from mnist_tiny.reader.predict import predict_files

    test = load_mnist(Path(os.environ.get("MNIST_TINY_DATA_DIR", "../shared/data")), False)["test"]
    rng = np.random.default_rng(seed)
    first = 5000 if hidden else 0
    paths = []
    for i in range(first, first + count):
        path = folder / f"single-{i:05d}-{int(test.labels[i])}.jpg"
        photo_like_scan(test.images[i].numpy(), rng).save(path, quality=int(rng.integers(70, 92)))
        paths.append(path)
    out = {"images": count}
    for expect in ("auto", "one"):
        rows = predict_files(reader, paths, expect=expect)
        out[expect] = sum(r.get("text") == r["path"][-5] for r in rows) / count
    # Calibration on these photos: the raw softmax against the temperature fitted on MNIST's validation split.
    from mnist_tiny.evaluation.calibration import reliability

    labels = np.array([int(p.name[-5]) for p in paths])
    for name, temperature in (("raw", 1.0), ("calibrated", getattr(reader, "temperature", 1.0))):
        rows = predict_files(reader, paths, expect="one", top_k=10, temperature=temperature)
        probs = np.array([[dict(r["top"])[d] for d in range(10)] for r in rows])
        cal = reliability(probs, labels)
        out[f"ece_{name}"], out[f"confidence_{name}"] = cal["ece"], cal["mean_confidence"]
    return out


def main() -> None:
    import os

    from mnist_tiny.embed.runtime import OnnxReader, shipped_onnx

    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--count", type=int, default=40, help="numbers per style")
    parser.add_argument("--hidden", action="store_true")
    parser.add_argument("--validation", action="store_true",
                        help="numbers of MNIST training digits 55,000-59,999 (to choose on; single digits: 0)")
    parser.add_argument("--model", default="fast-11k")
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--single", type=int, default=500, help="photo-like scans of single digits")
    parser.add_argument("--rows", type=int, default=40, help="pages of 2–3 rows per row style")
    args = parser.parse_args()
    reader = OnnxReader(shipped_onnx(args.model))
    pool = mnist_pool(os.environ.get("MNIST_TINY_DATA_DIR", "../shared/data"), args.hidden, args.validation)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        made = write_set(folder, args.seed, args.count, pool)
        by_style, wrong = score(made, reader)
        rows_by_style, rows_wrong = score(write_rows(folder, args.seed, args.rows, pool), reader) if args.rows else ({}, [])
        blanks = no_digit_images(np.random.default_rng(args.seed))
        for name, image in blanks.items():
            image.save(folder / f"none-{name}.png")
        from mnist_tiny.reader.predict import predict_files

        refused = predict_files(reader, [folder / f"none-{n}.png" for n in blanks])
        singles = single_digits(folder, args.seed, args.single, args.hidden, reader) if args.single else {}
    total = [ok for oks in by_style.values() for ok in oks]
    report = {"model": args.model, "seed": args.seed, "hidden": args.hidden,
              "numbers_exact": sum(total) / len(total), "numbers": len(total),
              "by_style": {k: sum(v) / len(v) for k, v in by_style.items()},
              "rows_exact": sum(sum(v) for v in rows_by_style.values()) / max(1, sum(map(len, rows_by_style.values()))),
              "rows": sum(map(len, rows_by_style.values())),
              "rows_by_style": {k: sum(v) / len(v) for k, v in rows_by_style.items()},
              "no_digit_read_as_digit": [r["path"].rsplit("/", 1)[-1] for r in refused if r.get("text")],
              "single_digits": singles,
              "wrong": wrong[:40], "rows_wrong": rows_wrong[:40]}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
