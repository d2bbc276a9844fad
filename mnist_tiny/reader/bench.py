"""What the reader does with what people give it, with and without its gate, side by side:

    MNIST_TINY_DATA_DIR=../shared/data python -m mnist_tiny.reader.bench [--count 2000] [--seed 4242]

- MNIST test digits saved as PNG (every 5th): the reader's reading against the model on the same tensors;
- one-mark images generated as the gate's validation set is (`gate_data.pages`, validation sources: MNIST training
  digits 55,000–59,999, other fonts, other seeds): digits read right (and, of those, flagged all the same), and
  the non-digits refused (no text) and refused or flagged (low confidence), per kind;
- digits drawn on a pad (strokes of every width) on white, dark and transparent backgrounds: read right;
- digits drawn with a wide pen filling small images: read right;
- the time a read takes, for the server's sake.

Prints JSON; docs/reading.md has the figures and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def read_greys(reader, greys: list[np.ndarray], gate) -> list[dict]:
    from mnist_tiny.reader.predict import locate_into, read_digits

    results, found = [], []
    for grey in greys:
        result: dict = {}
        locate_into(result, grey, grey.shape[::-1], found, len(results))
        results.append(result)
    return read_digits(reader, found, results, top_k=1, gate=gate)


def mnist_pngs(reader, data_dir: Path, gate) -> dict:
    import io

    from PIL import Image

    from mnist_tiny.data.mnist import load_mnist
    from mnist_tiny.reader.images import decode_image

    test = load_mnist(data_dir, False)["test"]
    index = list(range(0, 10_000, 5))
    greys = []
    for i in index:
        buffer = io.BytesIO()
        Image.fromarray(test.images[i].numpy()).save(buffer, "PNG")
        greys.append(decode_image(io.BytesIO(buffer.getvalue()), "png"))
    rows = read_greys(reader, greys, gate)
    labels = test.labels[index].numpy()
    model = reader(test.images[index].numpy()[:, None].astype(np.float32) / 255).argmax(1)
    read = np.array([int(r["text"]) if len(r.get("text", "")) == 1 else -1 for r in rows])
    return {"images": len(index), "reader": float((read == labels).mean()), "model": float((model == labels).mean()),
            "flagged": float(np.mean([bool(r.get("low_confidence")) for r in rows]))}


def one_marks(reader, data_dir: Path, count: int, seed: int, gate) -> dict:
    from mnist_tiny.reader.gate_data import pages

    made = list(pages(count, seed, True, data_dir))
    rows = read_greys(reader, [g for g, _, _ in made], gate)
    out: dict = {"images": len(made)}
    digits = [(r, label) for r, (_, kind, label) in zip(rows, made) if kind == "digit"]
    out["digits_read_right"] = float(np.mean([r.get("text") == str(label) for r, label in digits]))
    # what a flag costs: the digits read right that are flagged all the same
    out["digits_right_flagged"] = float(np.mean([bool(r.get("low_confidence")) for r, label in digits
                                                 if r.get("text") == str(label)]))
    others = [(r, kind) for r, (_, kind, _) in zip(rows, made) if kind != "digit"]
    out["non_digits_refused"] = float(np.mean([not r.get("text") for r, _ in others]))
    out["non_digits_refused_or_flagged"] = float(np.mean([not r.get("text") or r.get("low_confidence")
                                                         for r, _ in others]))
    for kind in sorted({k for _, k in others}):
        mine = [r for r, k in others if k == kind]
        out[f"refused: {kind}"] = float(np.mean([not r.get("text") for r in mine]))
    return out


def pad_digits(reader, count: int, seed: int, gate) -> dict:
    """Digits drawn on a pad, stroke by stroke (`reader.strokes`, pens of 2–24% of the digit's size, 40–300 px,
    margins of any size), saved as PNG in turn dark on white, light on dark, and dark strokes on a transparent
    background: the share read right, per background."""
    import io

    from PIL import Image

    from mnist_tiny.reader.images import decode_image
    from mnist_tiny.reader.strokes import STROKES, drawn

    rng = np.random.default_rng(seed)
    backgrounds = ("white", "dark", "transparent")
    greys, labels = [], []
    for i in range(count):
        digit, size = int(rng.integers(0, 10)), int(rng.integers(40, 300))
        ink = np.pad(drawn(STROKES[digit], rng, size, (2, 24)), int(rng.integers(2, size // 2 + 3)))
        background = backgrounds[i % 3]
        if background == "white":
            image = Image.fromarray((255 - ink * 235).astype(np.uint8))
        elif background == "dark":
            image = Image.fromarray((20 + ink * 230).astype(np.uint8))
        else:
            alpha = Image.fromarray((ink * 255).astype(np.uint8))
            black = Image.new("L", alpha.size, 0)
            image = Image.merge("RGBA", (black, black, black, alpha))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        greys.append(decode_image(io.BytesIO(buffer.getvalue()), "png"))
        labels.append(digit)
    rows = read_greys(reader, greys, gate)
    right = np.array([r.get("text") == str(label) for r, label in zip(rows, labels)])
    out = {"images": count, "read_right": float(right.mean())}
    for k, background in enumerate(backgrounds):
        out[background] = float(right[k::3].mean())
    return out


def thick_digits(reader, count: int, seed: int, gate) -> dict:
    """Digits drawn with a wide pen (10–24% of their size) filling 45–85% of a small image (96–200 px), dark on
    white and light on dark: where a thick digit's solid columns could pass for ruled lines (docs/reading.md)."""
    import io

    from PIL import Image

    from mnist_tiny.reader.images import decode_image
    from mnist_tiny.reader.strokes import STROKES, drawn

    rng = np.random.default_rng(seed)
    greys, labels = [], []
    for i in range(count):
        digit, side, fill = int(rng.integers(0, 10)), int(rng.integers(96, 201)), rng.uniform(0.45, 0.85)
        size = max(8, int(side * fill))
        ink = drawn(STROKES[digit], rng, size, (10, 24))
        canvas = np.zeros((side, side), np.float32)
        top, left = (int(rng.integers(0, side - size + 1)) for _ in range(2))
        canvas[top:top + size, left:left + size] = ink
        image = Image.fromarray((250 - canvas * 225 if i % 2 == 0 else 20 + canvas * 230).astype(np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        greys.append(decode_image(io.BytesIO(buffer.getvalue()), "png"))
        labels.append(digit)
    rows = read_greys(reader, greys, gate)
    return {"images": count, "read_right": float(np.mean([r.get("text") == str(label)
                                                           for r, label in zip(rows, labels)]))}


def main() -> None:
    from mnist_tiny.embed.runtime import READER_MODEL, OnnxReader, shipped_onnx
    from mnist_tiny.reader.gate import shipped_gate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="one-mark images")
    parser.add_argument("--pad", type=int, default=1500, help="digits drawn on a pad")
    parser.add_argument("--thick", type=int, default=1000, help="thick-pen digits filling small images")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--model", default=READER_MODEL)
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MNIST_TINY_DATA_DIR", "data")))
    args = parser.parse_args()
    reader = OnnxReader(shipped_onnx(args.model))
    report: dict = {"model": args.model, "seed": args.seed}
    for name, gate in (("rules only", None), ("with the gate", shipped_gate())):
        started = time.perf_counter()
        report[name] = {"mnist_png": mnist_pngs(reader, args.data_dir, gate),
                        "one_mark": one_marks(reader, args.data_dir, args.count, args.seed, gate),
                        "pad": pad_digits(reader, args.pad, args.seed, gate),
                        "thick": thick_digits(reader, args.thick, args.seed, gate)}
        report[name]["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    from mnist_tiny.errors import UserError

    try:
        main()
    except UserError as e:  # missing data and the like: one line, no traceback
        raise SystemExit(f"error: {e}") from None
