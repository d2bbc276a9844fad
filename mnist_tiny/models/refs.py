"""Model references: how every command and the Python API name a model.

    NAME                      a registered model, or one a package registers (entry-point group `mnist_tiny.models`)
    path/to/file.py[:Attr]    a class, a zero-argument function or a module instance in a file that is not installed
    package.module[:Attr]     the same in anything importable (`mynet:Net` is `./mynet.py` when that file exists)

Without `:Attr` the file's one `nn.Module` class is used. A user's code runs only here, only when its reference is
resolved, and each file runs once per process (keyed by its path and sha256). Every mistake in such a file becomes
one `UserError` naming the file and the fix.

Every model built here takes an N×1×28×28 float tensor in [0, 1] and returns N×10 logits (log-probabilities do
as well: softmax and cross-entropy read them the same). Ours normalise inside; a user's model gets the classic
MNIST normalisation, (x − 0.1307) / 0.3081, unless its recipe or `input_scaling` says "unit"; it is applied by a
forward pre-hook, so the model stays the user's own module with the user's own state-dict keys.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import importlib
import inspect
import sys
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mnist_tiny.errors import UserError
from mnist_tiny.models.registry import DEFAULT_MODEL, ModelSpec, registered
from mnist_tiny.process_imports import torch_complete

ENTRY_POINT_GROUP = "mnist_tiny.models"
SCALINGS = ("unit", "mnist")
MAX_SOURCE_BYTES = 4 * 1024 * 1024  # a model file is code, not data: refuse anything larger before reading it


@dataclass(frozen=True)
class ModelSource:
    """A resolved reference: where the model comes from and how to build it."""

    ref: str  # as the user wrote it
    kind: str  # "registry", "plugin", "file" or "module"
    name: str  # a short name for titles and run directories
    builder: Callable[[], Any] = field(repr=False)
    recipe: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    spec: ModelSpec | None = None
    target: str | None = None  # "module:Attr" for modules and plugins, "Attr" for files
    path: Path | None = None
    sha256: str | None = None
    text: str | None = field(default=None, repr=False)

    @property
    def builtin(self) -> bool:
        return self.kind == "registry"

    @property
    def default_scaling(self) -> str:
        return "unit" if self.builtin else str(self.recipe.get("input_scaling", "mnist"))

    def record(self) -> dict[str, Any]:
        """What a checkpoint keeps about a user's model: enough to recognise it, nothing that runs by itself."""
        return {"kind": self.kind, "ref": self.ref, "target": self.target,
                "path": str(self.path) if self.path else None, "sha256": self.sha256, "text": self.text}


ARCHITECTURES = ("fast11k", "gap3", "lean", "reference", "tiny")  # the files under models/ that register models


def _load_builtin_models() -> None:
    for name in ARCHITECTURES:  # importing a file registers its models (once: Python caches the module)
        importlib.import_module(f"mnist_tiny.models.{name}")


def list_models() -> list[str]:
    """Registered names (built-in first-class models), sorted."""
    _load_builtin_models()
    return sorted(registered())


def plugin_entry_points() -> dict[str, Any]:
    """Models third-party packages register (entry-point group `mnist_tiny.models`), not imported."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in registered()}


def get_spec(name: str) -> ModelSpec:
    _load_builtin_models()
    try:
        return registered()[name]
    except KeyError:
        known = sorted(registered())
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown model {name!r}{hint}; known models: {', '.join(known)}; "
                        "your own model: --model path/to/file.py:ClassName", 2) from None


def is_registry_name(ref: str) -> bool:
    """Shaped like a registry name (no path, no `:Attr`): what the user types may still name ./ref.py."""
    return not _looks_like_code(ref)


def is_registered(name: object) -> bool:
    """A name the registry (or an installed plugin) holds. A name read from a file must pass this before it is
    resolved: `resolve("model")` would import ./model.py, and a file never chooses code to run."""
    if not isinstance(name, str) or _looks_like_code(name):
        return False
    _load_builtin_models()
    return name in registered() or name in plugin_entry_points()


def _looks_like_code(ref: str) -> bool:
    return ":" in ref or "/" in ref or "\\" in ref or ref.endswith(".py")


def resolve(ref: str | None) -> ModelSource:
    """Turn a model reference into a `ModelSource` (importing a user's code: only call it on what the user named)."""
    ref = (ref or DEFAULT_MODEL).strip()
    if not ref:
        raise UserError("--model: empty model reference", 2)
    if not _looks_like_code(ref):
        _load_builtin_models()
        if ref in registered():
            spec = registered()[ref]
            return ModelSource(ref, "registry", ref, spec.builder, dict(spec.recipe), spec.description, spec)
        plugins = plugin_entry_points()
        if ref in plugins:
            return _from_plugin(ref, plugins[ref])
        if _module_file(ref) is None:
            get_spec(ref)  # raises the did-you-mean error
        # else: `mynet` names ./mynet.py, as `import mynet` would
    target, _, attr = ref.rpartition(":") if _has_attr(ref) else (ref, "", "")
    if target.endswith(".py") or "/" in target or "\\" in target or _module_file(target) is not None:
        path = Path(target) if target.endswith(".py") or "/" in target else _module_file(target)
        module, digest, text = _exec_file(path)
        attr_name, obj = _pick(module, attr, str(path))
        return ModelSource(ref, "file", f"{path.stem}-{attr_name}" if attr_name != path.stem else attr_name,
                           _builder(obj, f"{path}:{attr_name}"), _recipe(module, obj, f"{path}:{attr_name}"),
                           _doc(obj), target=attr_name, path=path.resolve(), sha256=digest, text=text)
    module = _import(target)
    attr_name, obj = _pick(module, attr, target)
    where = f"{target}:{attr_name}"
    return ModelSource(ref, "module", attr_name, _builder(obj, where), _recipe(module, obj, where), _doc(obj),
                       target=where, path=Path(module.__file__).resolve() if getattr(module, "__file__", None) else None)


def _has_attr(ref: str) -> bool:
    # "C:\\x\\net.py" has a drive colon, not an attribute: an attribute is an identifier after the last colon.
    head, sep, tail = ref.rpartition(":")
    return bool(sep) and tail.isidentifier() and bool(head)


def _module_file(target: str) -> Path | None:
    """`mynet` or `pkg.mynet` as a file under the current directory, the way `python -c "import mynet"` finds it."""
    if not all(part.isidentifier() for part in target.split(".")):
        return None
    path = Path(*target.split(".")).with_suffix(".py")
    return path if path.is_file() else None


def _from_plugin(name: str, entry_point) -> ModelSource:
    torch_complete()
    try:
        obj = entry_point.load()
    except (Exception, SystemExit) as e:
        raise UserError(f"model {name!r} (entry point {entry_point.value}): cannot be loaded: "
                        f"{type(e).__name__}: {e}") from None
    module = sys.modules.get(entry_point.module)
    return ModelSource(name, "plugin", name, _builder(obj, entry_point.value), _recipe(module, obj, entry_point.value),
                       _doc(obj), target=entry_point.value)


_FILES: dict[tuple[str, str], types.ModuleType] = {}


def _exec_file(path: Path) -> tuple[types.ModuleType, str, str]:
    """Run a user's model file once (per path and content) as a module; every failure is one line with its line."""
    label = str(path)
    if not path.exists():
        raise UserError(f"model file {label}: no such file", 2)
    if not path.is_file():
        raise UserError(f"model file {label}: not a regular file", 2)
    if path.stat().st_size > MAX_SOURCE_BYTES:
        raise UserError(f"model file {label}: {path.stat().st_size:,} bytes is too large for a Python model file", 2)
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"model file {label}: not UTF-8 text (is it a Python file?)", 2) from None
    key = (str(path.resolve()), digest)
    if key in _FILES:
        return _FILES[key], digest, text
    try:
        code = compile(text, label, "exec")
    except SyntaxError as e:
        raise UserError(f"{label}:{e.lineno}: syntax error: {e.msg}; fix the file and run again", 2) from None
    name = f"mnist_tiny_user_{path.stem if path.stem.isidentifier() else 'model'}_{digest[:10]}"
    torch_complete()
    module = types.ModuleType(name)
    module.__file__ = str(path.resolve())
    sys.modules[name] = module  # dataclasses, pickling helpers and typing look classes' modules up here
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # a model file may import its neighbours, as it would when run as a script
        sys.path.insert(0, folder)
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as e:  # a file that calls sys.exit() fails its check; it does not end ours
        del sys.modules[name]
        line = _line_in(e, label)
        where = f"{label}:{line}" if line else label
        if isinstance(e, SystemExit):
            raise UserError(f"{where}: the file calls exit() ({e.code!r}) while it is loaded; a model file must "
                            "define the model and return", 2) from None
        if isinstance(e, ImportError):
            raise UserError(f"{where}: {e}; install what it imports, or fix the import", 2) from None
        raise UserError(f"{where}: running the file failed: {type(e).__name__}: {e}", 2) from None
    _FILES[key] = module
    return module, digest, text


def _line_in(error: BaseException, filename: str) -> int | None:
    """The last line of `filename` in the error's traceback (where the user's code went wrong)."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == filename]
    return lines[-1] if lines else None


def _import(target: str) -> types.ModuleType:
    torch_complete()
    try:
        return importlib.import_module(target)
    except SystemExit as e:
        raise UserError(f"--model {target}: importing it called exit() ({e.code!r})", 2) from None
    except ModuleNotFoundError as e:
        if e.name and (target == e.name or target.startswith(e.name + ".")):
            raise UserError(f"--model {target}: no module named {e.name!r} (and no file {target.replace('.', '/')}.py"
                            " here); for a file, write path/to/file.py:ClassName", 2) from None
        raise UserError(f"--model {target}: importing it failed: {e}", 2) from None
    except Exception as e:
        raise UserError(f"--model {target}: importing it failed: {type(e).__name__}: {e}", 2) from None


def _is_model_class(value: Any) -> bool:
    from torch import nn

    return isinstance(value, type) and issubclass(value, nn.Module)


def _pick(module: types.ModuleType, attr: str, where: str) -> tuple[str, Any]:
    """The attribute a reference names, or the module's one model class when it names none."""
    from torch import nn

    own = [n for n, v in vars(module).items()
           if _is_model_class(v) and v.__module__ == module.__name__ and not n.startswith("_")]
    if attr:
        if hasattr(module, attr):
            return attr, getattr(module, attr)
        candidates = own + [n for n, v in vars(module).items()
                            if not n.startswith("_") and (inspect.isfunction(v) or isinstance(v, nn.Module))
                            and n not in own]
        close = difflib.get_close_matches(attr, candidates, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        listed = f"; it defines: {', '.join(candidates)}" if candidates else "; it defines no nn.Module class"
        raise UserError(f"{where}: has no {attr!r}{hint}{listed}", 2)
    if len(own) == 1:
        return own[0], getattr(module, own[0])
    if not own:
        raise UserError(f"{where}: defines no nn.Module class; name the function that builds the model, "
                        f"e.g. {where}:build", 2)
    raise UserError(f"{where}: defines several models ({', '.join(own)}); pick one, e.g. {where}:{own[0]}", 2)


def _builder(obj: Any, where: str) -> Callable[[], Any]:
    """A zero-argument callable that returns a fresh model."""
    from torch import nn

    if isinstance(obj, nn.Module):
        return lambda: copy.deepcopy(obj)
    if not callable(obj):
        raise UserError(f"{where}: is a {type(obj).__name__}, not a model class or a function that builds one", 2)
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        needed = [p.name for p in signature.parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if needed:
            raise UserError(f"{where}: needs arguments ({', '.join(needed)}) to be built; give them defaults, or add "
                            f"a function without arguments that returns the model and name it instead", 2)
    return obj


def _recipe(module: types.ModuleType | None, obj: Any, where: str) -> dict[str, Any]:
    """A recipe beside the model: a `recipe` dict on the class or function, else the module's `RECIPE`."""
    recipe = getattr(obj, "recipe", None)
    if recipe is None and module is not None:
        recipe = getattr(module, "RECIPE", None)
    if recipe is None:
        return {}
    if not isinstance(recipe, dict) or not all(isinstance(k, str) for k in recipe):
        raise UserError(f"{where}: its recipe must be a dict of settings, e.g. RECIPE = {{'epochs': 15}}", 2)
    return {k.replace("-", "_"): v for k, v in recipe.items()}


def _doc(obj: Any) -> str:
    doc = inspect.getdoc(obj) if callable(obj) else None
    return doc.strip().splitlines()[0] if doc else ""


class InputScaling:
    """A forward pre-hook: (x − mean) / std, for models written for the classic normalised MNIST input."""

    def __init__(self, mean: float, std: float):
        self.mean, self.std = mean, std

    def __call__(self, module, args):
        return ((args[0] - self.mean) / self.std, *args[1:])


def build(source: ModelSource, scaling: str | None = None, check: bool = True):
    """A fresh model from `source` that takes [0, 1] pixels; a user's model is checked before it is returned."""
    from torch import nn

    from mnist_tiny.models.layers import MNIST_MEAN, MNIST_STD

    scaling = scaling or source.default_scaling
    if scaling not in SCALINGS:
        raise UserError(f"input_scaling {scaling!r}: expected one of {', '.join(SCALINGS)}", 2)
    if source.builtin and scaling != "unit":
        raise UserError(f"model {source.ref!r} normalises its input itself; input_scaling applies to your own models", 2)
    try:
        model = source.builder()
    except UserError:
        raise
    except (Exception, SystemExit) as e:
        line = _line_in(e, str(source.path)) if source.path else None
        where = f" ({source.path}:{line})" if line else ""
        what = f"it calls exit() ({e.code!r})" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}"
        raise UserError(f"{source.ref}: building the model failed{where}: {what}", 2) from None
    if not isinstance(model, nn.Module):
        raise UserError(f"{source.ref}: returned a {type(model).__name__}, not a torch.nn.Module", 2)
    if scaling == "mnist":
        model.register_forward_pre_hook(InputScaling(MNIST_MEAN, MNIST_STD))
    model.input_scaling = scaling  # read back by checkpoints and exports
    if check and not source.builtin:
        check_model(model, source.ref)
    return model


def model_for(ref: str | None, input_scaling: str = "auto"):
    """`build(resolve(ref))` with a settings-style `input_scaling` ("auto" = the model's own default)."""
    return build(resolve(ref), None if input_scaling == "auto" else input_scaling)


def check_model(model, ref: str) -> None:
    """One forward pass on a small MNIST-shaped batch: every way a model cannot serve MNIST is one line."""
    import torch

    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise UserError(f"{ref}: parameter {name} is not finite (NaN or inf) once built", 2)
    batch = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(batch)
    except (Exception, SystemExit) as e:
        message = " ".join(str(e).split())[:200]
        if "channel" in message:
            hint = "it expects another number of channels; MNIST images have 1 (N×1×28×28)"
        else:
            hint = "MNIST images are N×1×28×28: does it expect another size or 3 channels?"
        raise UserError(f"{ref}: a forward pass on a 2×1×28×28 batch failed ({type(e).__name__}: {message}); "
                        f"{hint}", 2) from None
    finally:
        model.train(was_training)
    if not torch.is_tensor(out):
        raise UserError(f"{ref}: returns a {type(out).__name__}; expected one N×10 tensor of logits", 2)
    if tuple(out.shape) != (2, 10):
        raise UserError(f"{ref}: returns shape {tuple(out.shape)} for a batch of 2; expected (2, 10): "
                        "one score per digit", 2)
    if not torch.isfinite(out).all():
        raise UserError(f"{ref}: returns values that are not finite (NaN or inf) for ordinary images", 2)
    if bool((out >= 0).all()) and torch.allclose(out.sum(1), torch.ones(2), atol=1e-4):
        raise UserError(f"{ref}: returns probabilities (each row sums to 1); return logits or log_softmax, "
                        "which cross-entropy expects", 2)
