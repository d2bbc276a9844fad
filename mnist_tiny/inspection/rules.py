"""Course rules judged on what a model computes, not on which module classes it contains.

One training-mode forward pass (on a copy, with the global RNG restored afterwards) runs under a
`TorchFunctionMode` that sees every torch function the model calls, with forward hooks naming the module each
call came from. From that trace:

- bn: batch normalisation actually applied (`F.batch_norm`, whatever module or function calls it);
- dropout: a dropout that is active in training (p > 0, `nn.Dropout*` or `F.dropout*`; a Dropout module that
  computes its mask another way counts when it changes its input);
- gap: an average over the *whole* spatial map (`AdaptiveAvgPool2d(1)`, `x.mean((2, 3))`, an `AvgPool2d` whose
  window covers the map); a window that covers part of it is named with what it covers;
- fc: a linear map to the 10 outputs (`nn.Linear`, `F.linear`); a 1×1 conv to 10 channels on a 1×1 map is a
  linear map too and counts, said so in its evidence.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from mnist_tiny.errors import UserError

RULES = ("bn", "dropout", "gap", "fc")
ALIASES = {"bn": "bn", "batchnorm": "bn", "dropout": "dropout", "gap": "gap", "fc": "fc"}
COUNTS = ("total", "trainable", "with_bn_stats")


@dataclass
class Trace:
    """What one training-mode forward pass did, as evidence per rule."""

    bn: list[str] = field(default_factory=list)
    bn_channels: list[int] = field(default_factory=list)
    dropout: list[str] = field(default_factory=list)
    inactive_dropout: list[str] = field(default_factory=list)
    gap: list[str] = field(default_factory=list)  # full-map averages that feed the output
    partial_gap: list[str] = field(default_factory=list)  # part-map or unused averages, and why
    fc: list[str] = field(default_factory=list)
    # Receptive field along the convs and pools in the order they ran (functions too, not just modules).
    rf: int = 1
    jump: int = 1

    def grow(self, kernel: int, stride: int, dilation: int = 1) -> None:
        self.rf += (kernel - 1) * dilation * self.jump
        self.jump *= stride


def _arg(args, kwargs, index: int, name: str, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _hw(x) -> str:
    return "×".join(str(s) for s in x.shape[2:]) if torch.is_tensor(x) else "?"


def _tensors(value):
    if torch.is_tensor(value):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


def _spatial(x: torch.Tensor) -> bool:
    return x.dim() >= 3 and x[0, 0].numel() > 1


class _Recorder(TorchFunctionMode):
    """Records each rule's events and follows which pooled values reach the output.

    A pooled value is tagged; tags travel to a function's outputs as long as those have no spatial extent, so a
    global average that feeds the classifier reaches the output, while a squeeze-excitation gate (multiplied
    back onto a feature map) does not."""

    def __init__(self, trace: Trace):
        super().__init__()
        self.trace, self.stack = trace, []
        self.tags: dict[int, tuple[torch.Tensor, frozenset]] = {}  # id -> (tensor kept alive, labels)

    def where(self) -> str:
        if not self.stack:
            return "forward"
        name, module, _ = self.stack[-1]
        return f"{name} ({type(module).__name__})"

    def tag(self, tensor, label: str) -> None:
        if torch.is_tensor(tensor):
            old = self.tags.get(id(tensor), (None, frozenset()))[1]
            self.tags[id(tensor)] = (tensor, old | {label})

    def labels(self, tensor) -> frozenset:
        entry = self.tags.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else frozenset()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inherited = frozenset().union(*(self.labels(t) for t in _tensors((args, kwargs))))
        if inherited:
            for t in _tensors(out):
                if not _spatial(t):
                    for label in inherited:
                        self.tag(t, label)
        try:
            self.record(getattr(func, "__name__", ""), args, kwargs, out)
        except Exception:  # evidence is best effort; it must never break the model's own computation
            pass
        return out

    def record(self, name: str, args, kwargs, out) -> None:
        t = self.trace
        x = args[0] if args else kwargs.get("input")
        if not torch.is_tensor(x) or not torch.is_tensor(out):
            return
        if name in ("conv2d", "max_pool2d", "avg_pool2d") and x.dim() == 4:
            if name == "conv2d":
                kernel, stride, dilation = _arg(args, kwargs, 1, "weight").shape[-1], _arg(args, kwargs, 3, "stride", 1), \
                    _arg(args, kwargs, 5, "dilation", 1)
            else:
                kernel = _arg(args, kwargs, 1, "kernel_size")
                stride = _arg(args, kwargs, 2, "stride") or kernel
                dilation = _arg(args, kwargs, 4, "dilation", 1) if name == "max_pool2d" else 1
            t.grow(_pair(kernel)[-1], _pair(stride)[-1], _pair(dilation)[-1])
        elif name.startswith("adaptive_") and name.endswith("pool2d") and x.dim() == 4:
            size_in, size_out = x.shape[-1], max(1, out.shape[-1])
            t.grow(size_in - (size_out - 1) * (size_in // size_out), size_in // size_out)
        if name == "batch_norm":
            t.bn.append(f"{self.where()}: batch norm over {x.shape[1]} channels")
            t.bn_channels.append(int(x.shape[1]))
        elif "dropout" in name:
            p = float(_arg(args, kwargs, 1, "p", 0.5))
            training = _arg(args, kwargs, 2, "training", kwargs.get("train", True))
            if p > 0 and training:
                t.dropout.append(f"{self.where()}: {name}(p={p:g})")
            else:
                t.inactive_dropout.append(f"{self.where()}: {name} {'with p=0' if p == 0 else 'not in training'}, "
                                          "inactive")
        elif name in ("adaptive_avg_pool2d", "adaptive_avg_pool1d"):
            if not _spatial(out):
                self.tag(out, f"{self.where()}: adaptive average to 1×1 over the whole {_hw(x)} map")
            else:
                t.partial_gap.append(f"{self.where()}: adaptive average to {_hw(out)}, not one value per channel")
        elif name == "avg_pool2d" and x.dim() == 4 and not _spatial(out):
            h, w = x.shape[-2:]
            kh, kw = _pair(_arg(args, kwargs, 1, "kernel_size"))
            ph, pw = _pair(_arg(args, kwargs, 3, "padding", 0) or 0)
            covered = max(0, min(h, kh - ph)) * max(0, min(w, kw - pw))
            label = f"{self.where()}: average pool {kh}×{kw} on a {h}×{w} map covers"
            if covered >= h * w:
                self.tag(out, f"{label} all {h * w} positions")
            else:
                t.partial_gap.append(f"{label} {covered} of {h * w} positions")
        elif name == "mean" and x.dim() >= 3 and _spatial(x):
            dims = _arg(args, kwargs, 1, "dim")
            if dims is not None:
                dims = {d % x.dim() for d in ((dims,) if isinstance(dims, int) else dims)}
                if dims == set(range(2, x.dim())):
                    self.tag(out, f"{self.where()}: mean over the whole {_hw(x)} map")
        elif name == "linear" and out.shape[-1] == 10:
            weight = _arg(args, kwargs, 1, "weight")
            self.tag(out, f"fc:{self.where()}: linear {weight.shape[1]}→10")
        elif name == "conv2d" and out.dim() == 4 and out.shape[1] == 10 and not _spatial(out) and not _spatial(x):
            weight = _arg(args, kwargs, 1, "weight")
            if tuple(weight.shape[2:]) == (1, 1):
                self.tag(out, f"fc:{self.where()}: 1×1 conv {weight.shape[1]}→10 on a 1×1 map "
                              "(a linear map, counted as fc)")

    def finish(self, output) -> None:
        """Sort the tagged pools and linear maps by whether they reach the model's output."""
        reaching = set().union(*(self.labels(t) for t in _tensors(output)))
        for _, labels in self.tags.values():
            for label in labels:
                if label.startswith("fc:"):
                    (self.trace.fc if label in reaching else []).append(label[3:])
                elif label in reaching:
                    self.trace.gap.append(label)
                else:
                    self.trace.partial_gap.append(f"{label}, but it does not feed the output (e.g. channel attention)")
        for items in (self.trace.gap, self.trace.partial_gap, self.trace.fc):
            items[:] = list(dict.fromkeys(items))


def trace(model: nn.Module, batch: int = 4) -> Trace:
    """Run one training-mode forward pass on a copy of `model` and collect the evidence for each rule."""
    model = copy.deepcopy(model).train()
    result = Trace()
    recorder = _Recorder(result)
    stack = recorder.stack

    def enter(name):
        def hook(module, args):
            stack.append((name, module, len(result.dropout) + len(result.inactive_dropout)))
        return hook

    def leave(module, args, out):
        name, _, before = stack.pop()
        if isinstance(module, nn.modules.dropout._DropoutNd) and before == len(result.dropout) + len(
                result.inactive_dropout):
            # A Dropout module that draws its mask without F.dropout: judged by what it did to its input.
            changed = module.p > 0 and torch.is_tensor(out) and bool(args) and not torch.equal(out, args[0])
            label = f"{name} ({type(module).__name__}): p={module.p:g}"
            if changed:
                result.dropout.append(label)
            else:
                result.inactive_dropout.append(label + (", inactive" if module.p == 0 else
                                                        ", left its input unchanged: inactive"))

    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(enter(name)))
            handles.append(module.register_forward_hook(leave))
    images = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad(), recorder:
            output = model(images)
        recorder.finish(output)
    except (Exception, SystemExit) as e:  # a model that calls exit() in training mode fails the check
        raise UserError(f"the rule check's training-mode forward pass failed: {type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]}", 2) from None
    finally:
        for h in handles:
            h.remove()
    return result


def param_counts(model: nn.Module) -> dict[str, int]:
    """Parameters three ways, since courses count differently: all, trainable, and with BatchNorm's running
    mean and variance (as Keras counts them, "non-trainable params")."""
    total = sum(p.numel() for p in model.parameters())
    stats = sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules()
                if isinstance(m, nn.modules.batchnorm._NormBase) and m.running_mean is not None)
    return {"total": total, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "with_bn_stats": total + stats}


def judge(t: Trace) -> dict[str, dict[str, Any]]:
    """Each rule: ok, and the evidence that decided it (one line), plus every event seen."""

    def verdict(ok: bool, yes: list[str], no: list[str], none: str) -> dict[str, Any]:
        if ok:
            line = yes[0] if len(yes) == 1 else f"{yes[0]} (and {len(yes) - 1} more)"
        else:
            line = no[0] if len(no) == 1 else (f"{no[0]} (and {len(no) - 1} more)" if no else none)
        return {"ok": ok, "evidence": line, "seen": yes + no}

    bn = [f"batch norm applied {len(t.bn)}× (over {', '.join(map(str, t.bn_channels))} channels)"] if t.bn else []
    return {
        "bn": {**verdict(bool(t.bn), bn, [], "no batch norm is applied in a training-mode forward pass"),
               "seen": t.bn},
        "dropout": verdict(bool(t.dropout), t.dropout, t.inactive_dropout,
                           "no dropout runs in a training-mode forward pass"),
        "gap": verdict(bool(t.gap), t.gap, t.partial_gap, "no average over the whole spatial map"),
        "fc": verdict(bool(t.fc), t.fc, [], "no linear map to the 10 outputs"),
    }


def parse_require(require: str | None) -> list[str]:
    items = []
    for item in filter(None, (part.strip().lower() for part in (require or "").split(","))):
        if item not in ALIASES:
            raise UserError(f"--require {item!r}: expected some of bn, dropout, gap, fc", 2)
        items.append(ALIASES[item])
    return list(dict.fromkeys(items))


def validate_count(count: str) -> None:
    if count not in COUNTS:
        raise UserError(f"--count {count!r}: expected one of {', '.join(COUNTS)}", 2)


def check_rules(summary: dict[str, Any], max_params: int | None, require: str | None,
                count: str = "total") -> list[str]:
    """Course rules (`--max-params`, `--require bn,dropout,gap,fc`) → the list of broken ones, with evidence."""
    validate_count(count)
    broken = []
    n = summary["params"][count]
    if max_params is not None and n > max_params:
        label = {"total": "parameters", "trainable": "trainable parameters",
                 "with_bn_stats": "parameters with BatchNorm statistics"}[count]
        broken.append(f"{summary['model']} has {n:,} {label}, more than the allowed {max_params:,}")
    for rule in parse_require(require):
        verdict = summary["rules"][rule]
        if not verdict["ok"]:
            broken.append(f"{rule}: {verdict['evidence']} (required by --require {rule})")
    return broken
