"""Pick the torch device a run uses."""

from __future__ import annotations

import torch

from .errors import UserError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for, but torch sees no CUDA GPU (use --device cpu or auto)", 2)
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("device 'mps' was asked for, but this machine has no Apple GPU (use --device cpu or auto)", 2)
    return torch.device(name)


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move a model to `device` in the memory layout that runs it fastest there.

    On the CPU, channels-last (NHWC) lets oneDNN run these few-channel convolutions without reordering every
    activation; measured ~12–30% more training images/s for s6-attention and tiny-6k on 2 cores. A 1-channel
    input is the same bytes in either layout, so the inputs need no conversion. Elsewhere: unmeasured, unchanged.
    """
    model = model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model
