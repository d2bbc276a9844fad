"""What a model is: per-layer output shape, parameters, MACs and receptive field, and the course rules judged on
what it computes (`rules`), as plain data.

MACs come from `torch.utils.flop_counter` (FLOPs / 2), not hand formulas. The receptive field is tracked along
the execution order of the leaf layers: a k×k layer with stride s grows it by (k-1)·jump and multiplies the jump
by s. Parallel branches (a 1×1 shortcut, squeeze-excitation on a 1×1 map) add nothing, which is also their true
contribution, so the figure is exact for the models here and for any plain stack.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnist_tiny.inspection.rules import judge, param_counts, trace


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def summarize(model: nn.Module, name: str = "") -> dict[str, Any]:
    model = model.eval()
    leaves = [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
    records: dict[str, dict[str, Any]] = {}
    order: list[str] = []

    def hook(module_name):
        def record(module, inputs, output):
            if module_name not in records:
                order.append(module_name)
            records[module_name] = {"in": tuple(inputs[0].shape) if inputs and torch.is_tensor(inputs[0]) else None,
                                    "out": tuple(output.shape) if torch.is_tensor(output) else None}
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in leaves]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 1, 28, 28))
    except SystemExit as e:  # the user's forward called exit(): a failure to report, not our process's end
        from mnist_tiny.errors import UserError

        raise UserError(f"{name}: its forward pass calls exit() ({e.code!r})", 2) from None
    finally:
        for h in handles:
            h.remove()
    flops = counter.get_flop_counts()
    prefix = type(model).__name__
    modules = dict(leaves)

    rf, jump = 1, 1
    layers = []
    for layer_name in order:
        module = modules[layer_name]
        shape_in, shape_out = records[layer_name]["in"], records[layer_name]["out"]
        kernel, stride, dilation = _geometry(module, shape_in, shape_out)
        rf += (kernel - 1) * dilation * jump
        jump *= stride
        layers.append({
            "name": layer_name,
            "type": type(module).__name__,
            "output_shape": list(shape_out[1:]) if shape_out else None,
            "params": sum(p.numel() for p in module.parameters()),
            "macs": int(sum(flops.get(f"{prefix}.{layer_name}", {}).values()) // 2),
            "rf": {"size": rf, "jump": jump},
        })
    counts = param_counts(model)
    traced = trace(model)
    rules = judge(traced)
    return {
        "model": name or prefix,
        "total_params": counts["total"],
        "trainable_params": counts["trainable"],
        "params": counts,
        "unaccounted_params": counts["total"] - sum(layer["params"] for layer in layers),
        "macs": int(counter.get_total_flops() // 2),
        # Traced along the functions that ran, so F.max_pool2d in a forward counts as much as an nn.MaxPool2d.
        "receptive_field": max(rf, traced.rf),
        "rules": rules,
        "has": {"batchnorm": rules["bn"]["ok"], "dropout": rules["dropout"]["ok"], "gap": rules["gap"]["ok"],
                "fc": rules["fc"]["ok"]},
        "layers": layers,
    }


def _geometry(module: nn.Module, shape_in, shape_out) -> tuple[int, int, int]:
    """(kernel, stride, dilation) of a layer along one spatial axis; (1, 1, 1) for point-wise layers."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        kernel, stride = _pair(module.kernel_size)[0], _pair(module.stride or module.kernel_size)[0]
        dilation = _pair(getattr(module, "dilation", 1))[0]
        return kernel, stride, dilation
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)) and shape_in and len(shape_in) == 4:
        size_in, size_out = shape_in[-1], max(1, shape_out[-1])
        return size_in - (size_out - 1) * (size_in // size_out), size_in // size_out, 1
    return 1, 1, 1
