"""Confidence that means something: a temperature fitted on the validation split, and how well it holds.

A network's softmax is usually over-confident; dividing its logits by one number T (fitted by minimising the
negative log-likelihood on held-out images, never the test set) fixes most of that without changing any digit
it reads. Calibration is then measured as the expected calibration error (ECE: the gap between confidence and
accuracy, averaged over 15 confidence bins, weighted by how many images fall in each) and drawn as a
reliability diagram. numpy only.

    python -m mnist_tiny.evaluation.calibration [NAME ...]   # fit the shipped models' temperatures
"""

from __future__ import annotations

import numpy as np

BINS = 15
T_MIN, T_MAX = 0.05, 20.0  # the temperatures fit_temperature searches, and the only ones a reader accepts


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    return float(-log_softmax(logits / temperature)[np.arange(len(labels)), labels].mean())


def usable_temperature(value) -> float | None:
    """A recorded temperature (a checkpoint's, an ONNX file's metadata) as a float if it is one `fit_temperature`
    could have fitted; None for anything else (missing, not a number, 0, negative, absurd)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if T_MIN <= value <= T_MAX else None


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [T_MIN, T_MAX] minimising the mean NLL of softmax(logits / T): golden-section search on log T
    (the NLL is unimodal in it)."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    lo, hi = np.log(T_MIN), np.log(T_MAX)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, labels, np.exp(a)), nll(logits, labels, np.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, labels, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, labels, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = BINS) -> dict:
    """ECE and the per-bin figures of a reliability diagram (confidence of the top class against accuracy)."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    ece = 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if n:
            acc, conf = float(correct[inside].mean()), float(confidence[inside].mean())
            ece += n / len(labels) * abs(acc - conf)
            rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": n, "accuracy": acc,
                         "confidence": conf})
    return {"ece": float(ece), "bins": rows, "mean_confidence": float(confidence.mean()),
            "accuracy": float(correct.mean()), "nll": float(-np.log(probs[np.arange(len(labels)), labels] + 1e-12).mean())}


def calibration_report(val_logits, val_labels, test_logits, test_labels) -> dict:
    """Fit T on validation; the test set's reliability before and after (the digits read do not change)."""
    t = fit_temperature(val_logits, val_labels)
    test_logits = np.asarray(test_logits, dtype=np.float64)
    return {"temperature": t, "fitted_on": f"validation ({len(val_labels):,} images)",
            "raw": reliability(np.exp(log_softmax(test_logits)), test_labels),
            "calibrated": reliability(np.exp(log_softmax(test_logits / t)), test_labels)}


def _fit_shipped(names: list[str]) -> None:
    """Fit and record the temperature of each shipped model on the validation split its weights trained beside."""
    import torch

    from mnist_tiny.data.mnist import load_mnist, train_val_split
    from mnist_tiny.models.hub import get_model, weights_meta, write_meta
    from mnist_tiny.models.refs import get_spec, list_models
    from mnist_tiny.settings import resolve_settings, val_seed_of

    settings = resolve_settings({}, with_recipe=False)
    splits = load_mnist(settings.data_dir, settings.download, settings.mirror)
    for name in names or [m for m in list_models() if get_spec(m).has_weights]:
        spec = get_spec(name)
        meta = weights_meta(spec)
        recipe = meta.get("recipe", {})
        seed = val_seed_of(recipe.get("seed", meta.get("seed", 0)), recipe.get("split_seed"))
        _, val = train_val_split(splits["train"], recipe.get("val_size", 5000), seed, recipe.get("subset"))
        model = get_model(name, pretrained=True).eval()
        with torch.inference_mode():
            val_logits = model(val.images.float().unsqueeze(1) / 255).double().numpy()
            test_logits = model(splits["test"].images.float().unsqueeze(1) / 255).double().numpy()
        report = calibration_report(val_logits, val.labels.numpy(), test_logits, splits["test"].labels.numpy())
        write_meta(spec, {**meta, "temperature": round(report["temperature"], 4),
                          "calibration": {"fitted_on": report["fitted_on"],
                                          "test_ece_raw": round(report["raw"]["ece"], 5),
                                          "test_ece_calibrated": round(report["calibrated"]["ece"], 5)}})
        print(f"{name}: T = {report['temperature']:.3f}; test ECE {100 * report['raw']['ece']:.2f}% → "
              f"{100 * report['calibrated']['ece']:.2f}%")


if __name__ == "__main__":
    import sys

    _fit_shipped(sys.argv[1:])
