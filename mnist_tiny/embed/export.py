"""`mnist-tiny export`: a model (registry name, a user's file, a checkpoint) as an ONNX file that checks itself.

The graph takes what our models take (N×1×28×28 float32 pixels in [0, 1], N dynamic) and returns N×10 logits; a
user's input normalisation is inside it (the pre-hook is traced). Metadata in the file names the model, its
parameters, its recorded accuracy, the input contract and the labels. The file is then scored by onnxruntime on
the 10,000 test images beside the torch model it came from: the same accuracy, or `export` fails.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnist_tiny.errors import UserError

OPSET = 17
INPUT_CONTRACT = "pixels: N×1×28×28 float32 in [0, 1], light digit on dark as MNIST (see mnist_tiny.reader.images)"


def export_onnx(model: torch.nn.Module, out: Path, meta: dict[str, Any]) -> Path:
    """Write `model` as ONNX to `out` (never over an existing file), with `meta` as the file's metadata."""
    import onnx

    out = Path(out)
    if out.exists():
        raise UserError(f"--out {out}: exists; choose a new file (nothing is overwritten)", 2)
    model = model.eval()
    from mnist_tiny.training.rundir import write_atomic

    try:
        with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
            tmp = os.path.join(scratch, "model.onnx")
            warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation notes are not the user's
            torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), tmp, input_names=["pixels"],
                              output_names=["logits"], dynamic_axes={"pixels": {0: "n"}, "logits": {0: "n"}},
                              opset_version=OPSET, dynamo=False)
            graph = onnx.load(tmp)
        for key, value in {**meta, "input": INPUT_CONTRACT, "output": "logits: N×10, class k = digit k",
                           "labels": json.dumps(list(range(10)))}.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
        graph.producer_name = "mnist-tiny"
        onnx.checker.check_model(graph)
    except Exception as e:
        raise UserError(f"export to {out} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    # The one atomic writer: fsync, the user's umask, a one-line error.
    write_atomic(out, lambda f: f.write(graph.SerializeToString()), new=True)
    return out


def verify(path: Path, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Score the ONNX file (onnxruntime) and the torch model on the same images: accuracies, agreement, max diff."""
    from mnist_tiny.embed.runtime import OnnxReader

    reader = OnnxReader(path)
    model = model.eval()
    ours, theirs = [], []
    for start in range(0, len(labels), 1000):
        x = images[start:start + 1000].float().div(255).unsqueeze(1)
        with torch.inference_mode():
            ours.append(model(x).float().numpy())
        theirs.append(reader(x.numpy()))
    a, b = np.concatenate(ours), np.concatenate(theirs)
    y = labels.numpy()
    return {"torch_acc": float((a.argmax(1) == y).mean()), "onnx_acc": float((b.argmax(1) == y).mean()),
            "same_digit": float((a.argmax(1) == b.argmax(1)).mean()), "max_logit_diff": float(np.abs(a - b).max()),
            "images": int(len(y)), "bytes": Path(path).stat().st_size}
