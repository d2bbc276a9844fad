"""The course project's CI test in one call: structure rules, and an accuracy bar on a checkpoint.

`check(...)` returns plain data (`passed`, and one entry per check with its evidence); `mnist-tiny check` renders
it and exits 0 or 1. The defaults are the classic exercise: under 20k parameters, batch norm, an active dropout,
a true global average pool and a fully connected layer; 99.4% test accuracy within 20 epochs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnist_tiny.errors import UserError

DEFAULT_REQUIRE = "bn,dropout,gap,fc"
DEFAULT_MAX_PARAMS = 20_000
DEFAULT_MIN_ACC = 99.4


def check(model: str | None = None, checkpoint: Path | None = None, max_params: int | None = DEFAULT_MAX_PARAMS,
          require: str | None = DEFAULT_REQUIRE, count: str = "total", min_acc: float | None = None,
          max_epochs: int | None = None, settings=None) -> dict[str, Any]:
    """Judge a model (and, given a checkpoint, its test accuracy) against course rules.

    With a checkpoint its test accuracy must reach `min_acc` (default 99.4); without one there is no accuracy to
    judge, and the result says the accuracy was not checked."""
    from mnist_tiny.inspection.rules import parse_require, validate_count

    validate_count(count)
    summary, loaded = model_summary(model, checkpoint)
    checks = []
    n = summary["params"][count]
    if max_params is not None:
        checks.append({"name": "params", "ok": n <= max_params,
                       "detail": f"{n:,} {count.replace('_', ' ')} parameters (at most {max_params:,})"})
    for rule in parse_require(require):
        verdict = summary["rules"][rule]
        checks.append({"name": rule, "ok": verdict["ok"], "detail": verdict["evidence"]})
    if loaded is not None:
        epochs = loaded.settings.get("epochs")
        if max_epochs is not None and epochs is None:  # a bare state dict: like accuracy without a checkpoint
            checks.append({"name": "epochs", "ok": True, "skipped": True,
                           "detail": "not checked: the checkpoint records no epoch count (a bare state dict; "
                                     "train with `mnist-tiny train` to have it recorded)"})
        elif max_epochs is not None:
            checks.append({"name": "epochs", "ok": isinstance(epochs, int) and epochs <= max_epochs,
                           "detail": f"trained {epochs} epochs (at most {max_epochs})"})
        checks.append(_accuracy(loaded, DEFAULT_MIN_ACC if min_acc is None else min_acc, settings))
    elif max_epochs is not None or min_acc is not None:
        raise UserError("--min-acc and --max-epochs judge a trained model: pass --checkpoint PATH too", 2)
    return {"model": summary["model"], "checkpoint": str(checkpoint) if checkpoint else None,
            "params": summary["params"], "passed": all(c["ok"] for c in checks), "checks": checks,
            "accuracy_checked": loaded is not None}


def model_summary(model: str | None, checkpoint: Path | None = None):
    """`summarize` of a checkpoint's model (loaded, with `model` for a user's one) or of `model` as built;
    returns (summary, the loaded checkpoint or None)."""
    from mnist_tiny.inspection.summary import summarize

    if checkpoint is not None:
        from mnist_tiny.training.checkpoint import load_checkpoint

        loaded = load_checkpoint(checkpoint, model)
        return summarize(loaded.model, loaded.name), loaded
    from mnist_tiny.models.refs import model_for
    from mnist_tiny.models.registry import DEFAULT_MODEL

    return summarize(model_for(model), model or DEFAULT_MODEL), None


def _accuracy(loaded, min_acc: float, settings) -> dict[str, Any]:
    from mnist_tiny.evaluation.report import run_eval
    from mnist_tiny.settings import resolve_settings

    settings = settings or resolve_settings({}, with_recipe=False)
    result = run_eval(loaded, settings, "test")
    acc = 100 * result["accuracy"]
    return {"name": "accuracy", "ok": acc >= min_acc, "value": acc,
            "detail": f"{acc:.2f}% on the {result['n']:,} MNIST test images (at least {min_acc:g}%)"}


STARTER_FILES = {  # template in mnist_tiny/course/starter/ -> path in the new project
    "model.py": "model.py",
    "test_model.py": "test_model.py",
    "README.md": "README.md",
    "requirements.txt": "requirements.txt",
    "gitignore": ".gitignore",
    "workflow.yml": ".github/workflows/mnist.yml",
}


def install_requirement(extra: str = "train") -> str:
    """The requirement line that installs this mnist-tiny again: from where it came (PEP 610's direct_url.json:
    a git URL at its commit, a local folder or a wheel), else the package index at this version."""
    from importlib import metadata

    from mnist_tiny import __version__

    origin = None
    for dist in metadata.distributions(name="mnist-tiny"):  # a build's egg-info on the path records no origin
        try:
            origin = json.loads(dist.read_text("direct_url.json") or "null")
        except ValueError:
            continue
        if origin:
            break
    url = origin.get("url") if isinstance(origin, dict) else None
    if not isinstance(url, str) or not url:
        return f"mnist-tiny[{extra}]=={__version__}"
    vcs = origin.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") and vcs.get("commit_id"):
        return f"mnist-tiny[{extra}] @ {vcs['vcs']}+{url}@{vcs['commit_id']}"
    return f"mnist-tiny[{extra}] @ {url}"


def new_project(folder: Path) -> list[Path]:
    """Write a starter course project into `folder` (new or empty); never overwrites anything."""
    from importlib import resources

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder}: exists and is not a directory", 2)
    if folder.is_dir() and any(folder.iterdir()):
        raise UserError(f"{folder}: directory is not empty; `mnist-tiny new` writes only into a new or empty one", 2)
    templates = resources.files("mnist_tiny.course") / "starter"
    written = []
    for template, target in STARTER_FILES.items():
        path = folder / target
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (templates / template).read_text(encoding="utf-8")
        if template == "requirements.txt":
            text = text.replace("{requirement}", install_requirement())
        with open(path, "x", encoding="utf-8") as f:  # "x": fail rather than replace a file
            f.write(text)
        written.append(path)
    return written
