"""Distillation: a trained teacher's softened outputs as extra targets for the model being trained.

Loss = (1 − distill) · cross-entropy + distill · T² · KL(teacher/T ‖ student/T), with T = 4 (Hinton et al.,
2015): the teacher sees the same augmented batch. The teacher must have held out this run's validation split
(same size, same split seed), so the validation figures never rest on images the teacher learned; the test set
is seen by neither.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mnist_tiny.errors import UserError
from mnist_tiny.settings import Settings, val_seed_of

TEMPERATURE = 4.0


def load_teacher(s: Settings, device: torch.device) -> torch.nn.Module | None:
    """The teacher in eval mode on `device` (None without distillation), after checking its validation split."""
    if s.distill == 0:
        if s.teacher is not None:
            raise UserError(f"teacher = {s.teacher!r} is set but distill = 0; set distill (e.g. 0.5) to use it", 2)
        return None
    if s.teacher is None:
        raise UserError(f"distill = {s.distill} needs a teacher (e.g. --set teacher=s6-attention)", 2)
    from mnist_tiny.fast import prepare
    from mnist_tiny.models.refs import is_registry_name

    if is_registry_name(s.teacher):
        from mnist_tiny.models.hub import load_weights, weights_meta
        from mnist_tiny.models.refs import get_spec

        model = load_weights(s.teacher)
        recorded = weights_meta(get_spec(s.teacher)).get("recipe", {})
    else:
        from mnist_tiny.training.checkpoint import load_checkpoint

        loaded = load_checkpoint(s.teacher)
        model, recorded = loaded.model, loaded.settings if isinstance(loaded.settings, dict) else {}
    size = recorded.get("val_size")
    seed = val_seed_of(recorded.get("seed"), recorded.get("split_seed"))
    if size != s.val_size or seed != s.val_seed or recorded.get("subset") is not None:
        raise UserError(f"teacher {s.teacher}: held out {size} validation images drawn with seed {seed}; this run "
                        f"holds out {s.val_size} drawn with seed {s.val_seed}, some of which the teacher learned. "
                        f"Use --set split_seed={seed} --val-size {size} (or a teacher trained on this split)", 2)
    return prepare(model.eval(), device)


def loss(logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor, s: Settings) -> torch.Tensor:
    hard = F.cross_entropy(logits, labels, label_smoothing=s.label_smoothing)
    soft = F.kl_div(F.log_softmax(logits / TEMPERATURE, 1), F.log_softmax(teacher_logits / TEMPERATURE, 1),
                    log_target=True, reduction="batchmean") * TEMPERATURE ** 2
    return (1 - s.distill) * hard + s.distill * soft
