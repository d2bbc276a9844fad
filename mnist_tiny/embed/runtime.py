"""Reading digits on onnxruntime + numpy: no torch anywhere on this path.

The shipped models come with an ONNX file beside their weights (`models/weights/<name>.onnx`, written and checked
by `mnist-tiny export`); `mnist-tiny predict` and `serve` use it when onnxruntime is installed and no checkpoint of
another kind was asked for.
"""

from __future__ import annotations

import math
import os
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from mnist_tiny.errors import UserError
from mnist_tiny.evaluation.calibration import usable_temperature

Logits = Callable[[np.ndarray], np.ndarray]  # N×1×28×28 float32 in [0, 1] → N×10 logits


# What `predict`, `serve` and `mnist_tiny.read` read with unless told otherwise: the registry's default model,
# tuned on digits as the reader cuts them out of pages (`reader/digits_train.py`, docs/reading.md).
READER_MODEL = "reader-6k"


def shipped_onnx(name: str) -> Path | None:
    """The ONNX file shipped for a registry model, or the reader's own (READER_MODEL), found without importing
    any model code, if there is one."""
    if not name or "/" in name or ":" in name or name.endswith(".py"):
        return None
    if name == READER_MODEL:
        path = Path(str(resources.files("mnist_tiny.reader") / "digits.onnx"))
    else:
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


# An ONNX file is a program of sorts (loops, huge outputs): it is tried on a blank batch before it reads anything,
# and every run has a deadline, enforced by onnxruntime's own terminate flag from a timer.
TRIAL_SECONDS = 5.0
RUN_SECONDS = 30.0


class OnnxReader:
    """An ONNX file as a logits function; `meta` is the metadata `export` wrote into it. Refused in one line unless
    it is a digit reader: one N×1×28×28 float input, an N×10 float output, finite on a trial batch of two blank
    images within TRIAL_SECONDS. One thread by default, as the gate and the line reader: a read is a few crops,
    and onnxruntime's pool of one thread a core spins after every run (the one-worker server burnt twice the CPU a
    request of two one-thread workers; docs/embed.md). `threads=None`: onnxruntime's own choice."""

    def __init__(self, path: Path, threads: int | None = 1):
        from mnist_tiny.errors import require_file
        from mnist_tiny.reader.sessions import cpu_session

        require_file(path, f"model {path}")
        try:
            self.session = cpu_session(path, threads)
        except Exception as e:  # onnxruntime raises its own exception types for a broken file
            raise UserError(f"model {path}: not an ONNX model onnxruntime can load ({str(e).splitlines()[0][:160]})")
        label = f"model {path}"
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, 28, 28]:
            raise UserError(f"{label}: takes {[tuple(i.shape) for i in inputs]}, not one N×1×28×28 input")
        if isinstance(inputs[0].shape[0], int):
            raise UserError(f"{label}: takes a fixed batch of {inputs[0].shape[0]} (N×1×28×28 with N fixed); the reader "
                            "reads several crops at once: export with a dynamic batch axis")
        if inputs[0].type != "tensor(float)":
            raise UserError(f"{label}: its input is {inputs[0].type}, not float (tensor(float))")
        shape = list(outputs[0].shape) if outputs else []
        if not outputs or outputs[0].type != "tensor(float)" or len(shape) != 2 or shape[1] not in (10, None) \
                and not isinstance(shape[1], str):
            raise UserError(f"{label}: its output is {outputs[0].type if outputs else 'missing'} of shape "
                            f"{tuple(shape)}, not N×10 float logits (one per digit)")
        self.input, self.output = inputs[0].name, outputs[0].name
        self.label = label
        self.meta = {str(k): str(v) for k, v in self.session.get_modelmeta().custom_metadata_map.items()}
        self.path = Path(path)
        self.name = self.meta.get("model", Path(path).stem)
        # Fitted on the model's validation split: written into the file by `export`, or beside a shipped one.
        self.temperature = usable_temperature(self.meta.get("temperature")) or 1.0
        if "temperature" not in self.meta and shipped_onnx(self.path.stem) == self.path:
            self.temperature = shipped_temperature(self.path.stem)
        trial = self._run(np.zeros((2, 1, 28, 28), dtype=np.float32), TRIAL_SECONDS, "a trial on two blank images")
        if trial.shape != (2, 10):
            raise UserError(f"{label}: answers shape {tuple(trial.shape)} for two images, not 2×10 logits (one "
                            "per digit); a batch-1 export cannot read several crops at once: export with a dynamic "
                            "batch axis")
        if not np.isfinite(trial).all():
            raise UserError(f"{label}: answers NaN or inf logits for blank images; its weights are broken")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self._run(np.ascontiguousarray(x, dtype=np.float32), RUN_SECONDS, "reading")
        if out.shape != (len(x), 10):
            raise UserError(f"{self.label}: answered shape {tuple(out.shape)} for {len(x)} images, not N×10")
        if not np.isfinite(out).all():
            raise UserError(f"{self.label}: answered NaN or inf logits; its weights are broken")
        return out

    def _run(self, x: np.ndarray, seconds: float, what: str) -> np.ndarray:
        import onnxruntime as ort

        options = ort.RunOptions()
        options.log_severity_level = 4  # the deadline's "terminate flag" error is ours to report, in words
        key = WATCHDOG.watch(seconds, options)
        try:
            out = self.session.run([self.output], {self.input: x}, options)[0]
        except Exception as e:  # onnxruntime's own exception types: a graph that fails, or the deadline
            if options.terminate:
                raise UserError(f"{self.label}: {what} did not finish within {seconds:.0f} s; refused") from None
            raise UserError(f"{self.label}: {what} failed ({str(e).splitlines()[0][:160]})") from None
        finally:
            WATCHDOG.forget(key)
        return np.asarray(out)


class Watchdog:
    """One thread that sets the terminate flag of every run past its deadline. A timer thread per run cost the
    server more than the model did (starting a thread: 1–3 ms a request on 2 busy cores, docs/embed.md). The thread
    is woken only for a deadline before the time it already sleeps until: runs of one length come in deadline order,
    so it wakes about once per run length, not once per run (each wake is a thread switch on the reading path)."""

    def __init__(self) -> None:
        self._forked()
        # A child forked while the thread held the lock would inherit it held, and not the thread: it starts anew.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._cond = threading.Condition()
        self._runs: dict[int, tuple[float, object]] = {}
        self._count = 0
        self._wake = math.inf  # when the thread next looks at the runs (it sleeps until then or a notify)
        self._started = False  # the thread starts with the first run of this process

    def watch(self, seconds: float, options) -> int:
        with self._cond:
            if not self._started:
                self._started = True
                threading.Thread(target=self._loop, name="onnx-deadlines", daemon=True).start()
            self._count += 1
            deadline = time.monotonic() + seconds
            self._runs[self._count] = (deadline, options)
            if deadline < self._wake:
                self._wake = deadline
                self._cond.notify()
            return self._count

    def forget(self, key: int) -> None:
        with self._cond:
            self._runs.pop(key, None)

    def _loop(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for key, (deadline, options) in list(self._runs.items()):
                    if deadline <= now:
                        options.terminate = True
                        del self._runs[key]
                self._wake = min((deadline for deadline, _ in self._runs.values()), default=math.inf)
                self._cond.wait(None if self._wake == math.inf else self._wake - now)


WATCHDOG = Watchdog()


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

