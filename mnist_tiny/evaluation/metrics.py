"""Score a model on a split: plain data out (accuracy, loss, per-class figures, confusion matrix)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mnist_tiny.data.augment import to_float


@torch.inference_mode()
def logits_for(model: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int = 2000) -> torch.Tensor:
    """Logits for N×28×28 uint8 images, in large batches (BatchNorm in eval mode, no autograd)."""
    was_training = model.training
    model.eval()
    out = [model(to_float(chunk.to(device))).float().cpu() for chunk in images.split(batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, 10)


def loss_and_accuracy(model, images, labels, device, batch_size: int = 2000) -> tuple[float, float]:
    logits = logits_for(model, images, device, batch_size)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).double().mean().item()


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """rows = true class, columns = predicted class."""
    return torch.bincount(labels * classes + predictions, minlength=classes * classes).reshape(classes, classes)


def evaluate(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Everything `mnist-tiny eval` reports about these logits (`logits_for`), as JSON-ready data."""
    predictions = logits.argmax(1)
    confusion = confusion_matrix(labels, predictions)
    true_pos = confusion.diag().double()
    support, predicted = confusion.sum(1).double(), confusion.sum(0).double()
    precision = torch.where(predicted > 0, true_pos / predicted.clamp(min=1), torch.zeros_like(true_pos))
    recall = torch.where(support > 0, true_pos / support.clamp(min=1), torch.zeros_like(true_pos))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12),
                     torch.zeros_like(true_pos))
    wrong = (predictions != labels).nonzero().flatten()
    return {
        "n": len(labels),
        "accuracy": (predictions == labels).double().mean().item() if len(labels) else 0.0,
        "loss": F.cross_entropy(logits, labels).item() if len(labels) else 0.0,
        "errors": len(wrong),
        "per_class": [
            {"digit": d, "precision": precision[d].item(), "recall": recall[d].item(), "f1": f1[d].item(),
             "support": int(support[d])}
            for d in range(10)
        ],
        "confusion": confusion.tolist(),
        "misclassified": [{"index": int(i), "true": int(labels[i]), "predicted": int(predictions[i])} for i in wrong],
    }
