"""Reading digits on onnxruntime + numpy: no torch anywhere on this path.

The shipped models come with an ONNX file beside their weights (`models/weights/<name>.onnx`, written and checked
by `mnist-tiny export`); `mnist-tiny predict` and `serve` use it when onnxruntime is installed and no checkpoint of
another kind was asked for.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from mnist_tiny.errors import UserError
from mnist_tiny.evaluation.calibration import usable_temperature

Logits = Callable[[np.ndarray], np.ndarray]  # N×1×28×28 float32 in [0, 1] → N×10 logits


def shipped_onnx(name: str) -> Path | None:
    """The ONNX file shipped for a registry model (found without importing any model code), if there is one."""
    if not name or "/" in name or ":" in name or name.endswith(".py"):
        return None
    path = Path(str(resources.files("mnist_tiny.models") / "weights" / f"{name}.onnx"))
    return path if path.is_file() else None


def shipped_temperature(name: str) -> float:
    """The temperature fitted on a shipped model's validation split (`evaluation.calibration`), from the JSON
    beside its weights; 1.0 (raw softmax) when none was fitted."""
    import json

    path = shipped_onnx(name)
    meta = path.with_suffix(".json") if path is not None else None
    try:
        value = json.loads(meta.read_text())["meta"].get("temperature") if meta and meta.is_file() else None
    except (OSError, ValueError, KeyError, AttributeError):
        return 1.0
    return usable_temperature(value) or 1.0


def have_onnxruntime() -> bool:
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


class OnnxReader:
    """An ONNX file as a logits function; `meta` is the metadata `export` wrote into it."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        from mnist_tiny.errors import require_file

        require_file(path, f"model {path}")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are not the user's business
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for a broken file
            raise UserError(f"model {path}: not an ONNX model onnxruntime can load ({str(e).splitlines()[0][:160]})")
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, 28, 28]:
            raise UserError(f"model {path}: takes {[tuple(i.shape) for i in inputs]}, not one N×1×28×28 input")
        self.input = inputs[0].name
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.path = Path(path)
        self.name = self.meta.get("model", Path(path).stem)
        # Fitted on the model's validation split: written into the file by `export`, or beside a shipped one.
        self.temperature = usable_temperature(self.meta.get("temperature")) or 1.0
        if "temperature" not in self.meta and shipped_onnx(self.path.stem) == self.path:
            self.temperature = shipped_temperature(self.path.stem)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input: np.ascontiguousarray(x, dtype=np.float32)})[0]


def torch_logits(model, temperature=None) -> Logits:
    """A torch model as a logits function on numpy arrays (the path for checkpoints and users' models); its
    `temperature` is the checkpoint's, fitted on validation when training finished (1.0 if none)."""
    import torch

    model.eval()

    def logits(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).float().numpy()

    logits.temperature = usable_temperature(temperature) or 1.0
    return logits

