"""The optimizer a recipe names, built over the model's parameters: SGD (our flat-buffer one, `fast.sgd`, the
same update as `torch.optim.SGD`) or `torch.optim.AdamW`."""

from __future__ import annotations

import torch

from mnist_tiny.fast.sgd import SGD


def make_optimizer(model: torch.nn.Module, s) -> SGD | torch.optim.Optimizer:
    """The optimizer `s` (Settings) names. No weight decay on BatchNorm and biases: with a few thousand weights,
    decaying them costs accuracy."""
    trainable = [p for p in model.parameters() if p.requires_grad]  # frozen ones stay out (and unchanged)
    decay = [p for p in trainable if p.ndim > 1]
    no_decay = [p for p in trainable if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if s.optimizer == "sgd":
        return SGD(groups, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov and s.momentum > 0)
    return torch.optim.AdamW(groups, lr=s.lr, betas=(s.momentum, 0.999))
