"""An ONNX file as an onnxruntime session on the CPU, as every part of the reader opens one (its digit model, the
gate, the line reader): errors only in the log, a bounded number of threads."""

from __future__ import annotations

from pathlib import Path


def cpu_session(path: Path, threads: int | None = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are not the user's business
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
