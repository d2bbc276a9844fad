"""Writing the reader's learned parts as ONNX files with their figures in the metadata: what the training commands
(`gate_train`, `line_train`) share."""

from __future__ import annotations

from pathlib import Path


def write_onnx(net, out: Path, example: tuple, names: dict[str, list[str]], dynamic_axes: dict, meta: dict) -> None:
    """`net` (eval mode) traced on `example` into `out`, `names` its "inputs" and "outputs", `meta` as metadata."""
    import onnx
    import torch

    net.eval()
    tmp = out.with_suffix(".tmp.onnx")
    torch.onnx.export(net, example, str(tmp), input_names=names["inputs"], output_names=names["outputs"],
                      dynamic_axes=dynamic_axes, dynamo=False)
    model = onnx.load(str(tmp))
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(out))
    tmp.unlink()


def set_meta(path: Path, key: str, value: float) -> None:
    """Set one number in an ONNX file's metadata (a threshold chosen after training)."""
    import onnx

    model = onnx.load(str(path))
    for entry in model.metadata_props:
        if entry.key == key:
            entry.value = f"{value:.6f}"
            break
    else:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, f"{value:.6f}"
    onnx.save(model, str(path))
