"""The optimizer a recipe names, built over the model's parameters.

SGD is our own few lines instead of `torch.optim.SGD`: the first call into any `torch.optim` optimizer imports
`torch._dynamo`, which costs ~1.9 s on 2 CPU cores (measured: `torch.optim.SGD(...)` in a fresh process after
`import torch`), a noticeable share of a short training run and of every test that trains. The update is
`torch.optim.SGD`'s single-tensor path op for op (bit-identical results), and `state_dict()` has its format, so
a `last.pt` written by either resumes with either. AdamW, not on the default path, stays `torch.optim.AdamW`.
"""

from __future__ import annotations

from typing import Any

import torch


class SGD:
    """SGD with momentum (optionally Nesterov) and per-group weight decay, as `torch.optim.SGD` computes it."""

    def __init__(self, groups: list[dict[str, Any]], lr: float, momentum: float = 0.0, nesterov: bool = False):
        defaults = {"lr": lr, "momentum": momentum, "dampening": 0.0, "weight_decay": 0.0, "nesterov": nesterov}
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in groups]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad if decay == 0 else p.grad.add(p, alpha=decay)
                if momentum != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = grad.detach().clone()
                    else:
                        buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
                    grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
                p.add_(grad, alpha=-lr)

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
        self.state = {}
        for i, saved in state_dict["state"].items():
            buf = saved.get("momentum_buffer")
            if buf is not None:  # torch.optim.SGD stores None when momentum is 0
                self.state[params[int(i)]] = {"momentum_buffer": buf.clone()}


def make_optimizer(model: torch.nn.Module, s) -> SGD | torch.optim.Optimizer:
    """The optimizer `s` (Settings) names. No weight decay on BatchNorm and biases: with a few thousand weights,
    decaying them costs accuracy."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if s.optimizer == "sgd":
        return SGD(groups, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov and s.momentum > 0)
    return torch.optim.AdamW(groups, lr=s.lr, betas=(s.momentum, 0.999))
