"""SGD over flat buffers: `torch.optim.SGD`'s update, in a handful of ops for a whole parameter group.

Our own few lines instead of `torch.optim.SGD`: the first call into any `torch.optim` optimizer imports
`torch._dynamo` (seconds, a noticeable share of a short run: docs/performance.md, "Start-up"). The update is
`torch.optim.SGD`'s (single-tensor path), and `state_dict()` has its format, so a `last.pt` written by either resumes with either.

A tiny model's update is ~30 tensors of a few hundred values: its cost is the number of ops, not the arithmetic.
So the parameters, their gradients and momentum buffers live back to back in three flat buffers (each parameter
becomes a view into the first; nothing else about the model changes), and the processes of a data-parallel run
can sum the one gradient buffer in place (`gradient_buffer`).
"""

from __future__ import annotations

from typing import Any

import torch


class SGD:
    """SGD with momentum (optionally Nesterov) and per-group weight decay, as `torch.optim.SGD` computes it.

    Gradients stay in their flat buffer: `zero_grad` zeroes them instead of dropping them, so a parameter the loss
    does not reach gets a zero gradient (and its weight decay) where torch.optim would skip it. A gradient that
    other code replaced is copied back into place before the update."""

    def __init__(self, groups: list[dict[str, Any]], lr: float, momentum: float = 0.0, nesterov: bool = False):
        defaults = {"lr": lr, "momentum": momentum, "dampening": 0.0, "weight_decay": 0.0, "nesterov": nesterov}
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in groups]
        params = self._params()
        if not params or len(set(map(id, params))) != len(params) or len({(p.device, p.dtype) for p in params}) > 1:
            raise ValueError("SGD needs distinct parameters, at least one, of one dtype on one device")
        self.flat_params, _ = _flatten(params, move=True)
        self.flat_grads, self._grad_views = _flatten(params)
        self._momentum, self._momentum_views = _flatten(params)
        for p, view in zip(params, self._grad_views):
            if p.grad is not None:
                view.copy_(p.grad)
            p.grad = view
        # torch.optim's layout: a parameter's momentum buffer appears in `state` once the buffer exists.
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients (in place whatever `set_to_none` says: see the class docstring)."""
        self._reclaim_gradients()
        self.flat_grads.zero_()

    @torch.no_grad()
    def _reclaim_gradients(self) -> None:
        """Put gradients that other code replaced (clipping, a hook) or dropped back into the flat buffer."""
        for p, view in zip(self._params(), self._grad_views):
            if p.grad is not view:
                view.copy_(p.grad) if p.grad is not None else view.zero_()
                p.grad = view

    @torch.no_grad()
    def step(self) -> None:
        self._reclaim_gradients()
        start = 0
        for group in self.param_groups:
            stop = start + sum(p.numel() for p in group["params"])
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            params, grad = self.flat_params[start:stop], self.flat_grads[start:stop]
            if decay != 0:
                grad = grad.add(params, alpha=decay)
            if momentum != 0:
                buf = self._momentum[start:stop]
                if group["params"] and group["params"][0] in self.state:
                    buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
                else:  # the first step: the buffer is the gradient itself
                    buf.copy_(grad)
                    self._start_momentum(group)
                grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
            params.add_(grad, alpha=-lr)
            start = stop

    def _start_momentum(self, group: dict[str, Any]) -> None:
        views = dict(zip(map(id, self._params()), self._momentum_views))
        for p in group["params"]:
            self.state.setdefault(p, {"momentum_buffer": views[id(p)]})

    def gradient_buffer(self) -> torch.Tensor | None:
        """The one buffer that holds every gradient, while every parameter's `.grad` is still its view of it (so
        summing it in place sums them all); None once other code replaced one (`step` copies it back)."""
        if all(p.grad is view for p, view in zip(self._params(), self._grad_views)):
            return self.flat_grads
        return None

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        """`torch.optim.Optimizer`'s format: state and groups refer to parameters by their position."""
        index = {p: i for i, p in enumerate(self._params())}
        state = {index[p]: {k: v.clone() for k, v in s.items()} for p, s in self.state.items()}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_groups = state_dict["param_groups"]
        if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("optimizer state does not match this model's parameter groups")
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: saved[k] for k in ("lr", "momentum", "dampening", "weight_decay", "nesterov") if k in saved})
        params = self._params()
        self._momentum.zero_()
        self.state = {}
        for i, saved in state_dict["state"].items():
            buf = saved.get("momentum_buffer")
            if buf is None:  # torch.optim.SGD stores None when momentum is 0
                continue
            view = self._momentum_views[int(i)]
            if buf.shape != view.shape:
                raise ValueError(f"optimizer state: momentum buffer {i} has shape {tuple(buf.shape)}, "
                                 f"its parameter {tuple(view.shape)}")
            view.copy_(buf)
            self.state[params[int(i)]] = {"momentum_buffer": view}
        # A parameter torch.optim never stepped has no buffer; in a group that has started, its zero buffer gives
        # the same next step as torch's first one (buffer = gradient; without dampening, which our recipes never
        # set), so it joins the state.
        for group in self.param_groups:
            if any(p in self.state for p in group["params"]):
                self._start_momentum(group)


def _flatten(params: list[torch.Tensor], move: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A flat buffer of zeros and views of it shaped and strided like each of `params`, back to back. With `move`,
    the parameters' values move into the buffer and the parameters become those views."""
    flat = params[0].new_zeros(sum(p.numel() for p in params))
    views, offset = [], 0
    for p in params:
        dense = p.is_contiguous() or (p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last))
        stride = p.stride() if dense else torch.empty(p.shape, device="meta").stride()
        view = flat.as_strided(p.shape, stride, offset)
        if move:
            view.copy_(p.detach())
            p.data = view
        views.append(view)
        offset += p.numel()
    return flat, views
