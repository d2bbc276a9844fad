"""One settings object for every command.

Precedence, lowest first: field defaults < the model's recipe (its own, or `recipe = NAME`'s) < a TOML file (`--config`)
< environment variables `MNIST_TINY_<FIELD>` < command-line flags. Every invalid value, whatever its source,
becomes one `UserError` that names the field and where the value came from.
"""

from __future__ import annotations

import difflib
import json
import os
import stat
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mnist_tiny.choices import Device, InputScaling, Optimizer, Scheduler
from mnist_tiny.errors import UserError
from mnist_tiny.models.registry import DEFAULT_MODEL

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "MNIST_TINY_"


def default_data_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mnist-tiny"


def val_seed_of(seed, split_seed):
    """The seed that drew a run's validation split, from its `seed` and `split_seed` (as settings or as recorded in
    a checkpoint or a weights file): `split_seed` when set, else `seed`."""
    return seed if split_seed is None else split_seed


class Settings(BaseModel):
    """Everything a run depends on. Saved in the run directory and in every checkpoint."""

    # allow_inf_nan=False: `lr = nan` is "not a finite number", not "should be ≤ 10".
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False)

    model: str = Field(DEFAULT_MODEL, description="model reference: a registry name, path/to/file.py:Attr or module:Attr")
    recipe: Optional[str] = Field(None, description="borrow this registry model's training recipe (e.g. fast-11k)")
    input_scaling: InputScaling = Field("auto", description=(
        "what the model expects: unit = pixels in [0, 1], mnist = (x - 0.1307) / 0.3081; auto = ours unit, "
        "a user's model mnist unless its recipe says otherwise"))
    epochs: int = Field(15, gt=0, le=10_000)
    batch_size: int = Field(64, gt=0, le=65_536)
    optimizer: Optimizer = "sgd"
    # 0.1 for a model without a recipe (a user's): one epoch on 5,000 images, 3 seeds, reached 90.6-93.0% with a
    # course-style model against 79.7-90.1% at 0.05 (docs/own-model.md). Our models' recipes state their own.
    lr: float = Field(0.1, gt=0, le=10, description="peak learning rate")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0, lt=1)
    scheduler: Scheduler = "onecycle"
    warmup: float = Field(0.2, ge=0, lt=1, description="fraction of steps spent warming up (onecycle)")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    ema: float = Field(0.0, ge=0, lt=1, description="decay of an exponential moving average of the weights; 0 = off")
    recalibrate_bn: int = Field(0, ge=0, le=60_000, description=(
        "before each checkpoint is scored and saved, average its BatchNorm statistics over this many unaugmented "
        "training images; 0 = keep the running averages"))
    rotate: float = Field(7.0, ge=0, le=180, description="augmentation: max rotation, degrees")
    translate: float = Field(0.06, ge=0, le=0.5, description="augmentation: max shift, fraction of the image")
    scale: float = Field(0.06, ge=0, lt=1, description="augmentation: max zoom in/out, fraction")
    val_size: int = Field(5000, gt=0, lt=60_000, description="training images held out to pick checkpoints")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    split_seed: Optional[int] = Field(None, ge=0, le=2**32 - 1, description=(
        "seed of the validation split alone (default: seed): a sweep over seeds can hold out the same images"))
    teacher: Optional[str] = Field(None, description=(
        "distil from this model: a registry name (its shipped weights) or a checkpoint; it must have held out "
        "this run's validation split"))
    distill: float = Field(0.0, ge=0, le=1, description="weight of the teacher's soft targets in the loss (needs teacher)")
    device: Device = "auto"
    processes: Optional[int] = Field(None, gt=0, le=256, description=(
        "CPU training processes, each training on a shard of every batch (default: one per core when the batch "
        "and the run are big enough; 1 when threads is set or on a GPU)"))
    threads: Optional[int] = Field(None, gt=0, le=1024, description="CPU threads per process (default: cores / processes)")
    data_dir: Path = Field(default_factory=default_data_dir)
    download: bool = Field(True, description="download MNIST into data_dir when it is missing")
    mirror: Optional[str] = Field(None, description="base URL to download MNIST's .gz files from")
    out: Optional[Path] = Field(None, description="run directory (default: runs/<model>-<timestamp>)")
    subset: Optional[int] = Field(None, gt=0, description="train on the first N training images")
    fast_kernels: bool = Field(True, description=(
        "train on mnist-tiny's CPU kernels: Dropout with a cheaper mask of the same distribution, and a Conv2d → "
        "BatchNorm2d → MaxPool2d block of an odd width computed 8 channels wide; false: torch's own layers"))
    # Cache-sized: a 2,000-image batch's activations no longer fit in cache and ran slower per image on the CPU
    # (docs/performance.md); on a GPU raise it (--set eval_batch_size=10000).
    eval_batch_size: int = Field(500, gt=0, le=65_536, description="images per forward pass when evaluating")
    verify_data: bool = Field(False, description="check the md5 of the four MNIST files before using them")
    test: bool = Field(True, description=(
        "score the best and last checkpoints on the test set when training ends; `tune` sets it false, so that "
        "a search never reads the test set"))

    @property
    def val_seed(self) -> int:
        """The seed that draws the validation split."""
        return val_seed_of(self.seed, self.split_seed)

    @field_validator("data_dir", "out")
    @classmethod
    def _utf8_path(cls, value: Optional[Path]) -> Optional[Path]:
        # Settings are saved as JSON; a name that is not UTF-8 (undecodable bytes on the command line) cannot be.
        if value is not None:
            try:
                str(value).encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("the path is not valid UTF-8; choose a name in UTF-8") from None
        return value


FIELDS = tuple(Settings.model_fields)


MAX_CONFIG_BYTES = 1_000_000


def _read_toml(path: Path) -> dict[str, Any]:
    """A regular file of sane size (not /dev/zero, not a FIFO), UTF-8 TOML, values of the fields' own types."""
    label = f"config file {path}"
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise UserError(f"{label}: is a directory", 2)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{label}: not a regular file (a device, FIFO or socket)", 2)
        if info.st_size > MAX_CONFIG_BYTES:
            raise UserError(f"{label}: {info.st_size:,} bytes is too large for a settings file "
                            f"(limit {MAX_CONFIG_BYTES:,})", 2)
        with open(path, "rb") as f:
            text = f.read(MAX_CONFIG_BYTES + 1).decode("utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise UserError(f"{label}: no such file", 2) from None
    except OSError as e:
        raise UserError(f"{label}: cannot read ({e.strerror})", 2) from None
    except UnicodeDecodeError as e:
        raise UserError(f"{label}: not UTF-8 text (byte {e.start}); TOML files are UTF-8", 2) from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{label}: invalid TOML ({e})", 2) from None
    except RecursionError:
        raise UserError(f"{label}: invalid TOML (arrays or tables nested too deeply)", 2) from None
    # Allow both a flat file and one with a [train] table.
    table = data.get("train", {})
    if not isinstance(table, dict):
        raise UserError(f"{label}: `train` must be a table of settings ([train]), not {table!r}", 2)
    data = {**{k: v for k, v in data.items() if k != "train"}, **table}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    for key, value in data.items():
        if key in FIELDS and not _toml_type_fits(Settings.model_fields[key].annotation, value):
            raise UserError(f"{label}: {key} = {json.dumps(value, default=str)} is a {_toml_type(value)}; {key} takes "
                            f"{_wanted(Settings.model_fields[key].annotation)}", 2)
    return data


def _toml_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", dict: "table", list: "array"}.get(
        type(value), type(value).__name__)


def _plain(annotation: Any) -> set[type]:
    """The value types a field's annotation admits from a typed file (Optional and Literal unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_plain(a) for a in typing.get_args(annotation) if a is not type(None)))
    if origin is Literal:
        return {type(a) for a in typing.get_args(annotation)}
    if annotation is Path:
        return {str}
    return {annotation}


def _toml_type_fits(annotation: Any, value: Any) -> bool:
    """Strict, as a typed file deserves: `epochs = true` is not 1 epoch and `lr = "0.1"` is not a number.
    An integer is a fine float."""
    wanted = _plain(annotation)
    if type(value) is bool:
        return bool in wanted
    if type(value) is int:
        return int in wanted or float in wanted
    return type(value) in wanted


def _wanted(annotation: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return " or ".join(sorted(names.get(t, t.__name__) for t in _plain(annotation)))


def _read_env(environ: dict[str, str]) -> dict[str, Any]:
    values = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in FIELDS:
            values[name] = None if value == "" and name in ("out", "subset", "mirror", "threads", "processes") else value
        else:
            close = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
            print(f"warning: ignoring unknown environment variable {key}{hint}", file=sys.stderr)
    return values


def resolve_settings(
    flags: dict[str, Any] | None = None,
    config: Path | None = None,
    environ: dict[str, str] | None = None,
    with_recipe: bool = True,
    sets: dict[str, Any] | None = None,
) -> Settings:
    """Merge all sources (see module docstring) and validate once; errors name the field and its source.

    `sets` are `--set KEY=VALUE` pairs (named in errors as such). `with_recipe=False` leaves the model's recipe out (commands that do not train need none, and resolving a
    user's model for it would run the user's file)."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if config is not None:
        layers.append((f"config file {config}", _read_toml(config)))
    layers.append(("environment", _read_env(dict(os.environ if environ is None else environ))))
    layers.append(("--set", dict(sets or {})))  # named flags win over --set KEY=VALUE
    layers.append(("command line", {k: v for k, v in (flags or {}).items() if v is not None}))

    merged: dict[str, Any] = {}
    source: dict[str, str] = {}
    for name, values in layers:
        merged.update(values)
        source.update({k: name for k in values})

    if with_recipe:  # the model's recipe sits between the defaults and everything the user said
        recipe, label = model_recipe(merged)
        source.update({k: label for k in recipe if k not in merged})
        merged = {**recipe, **merged}

    try:
        return Settings.model_validate(merged)
    except ValidationError as e:
        raise UserError(_describe(e, source), 2) from None


def data_dir_for(current: Settings, recorded: Any) -> Path:
    """Where to read MNIST for a run's checkpoint: the folder some source gave; else the one the run recorded, if
    it still holds MNIST (a new shell without MNIST_TINY_DATA_DIR still finds it); else the default."""
    from mnist_tiny.data.mnist import holds_mnist

    if "data_dir" not in current.model_fields_set and holds_mnist(recorded):
        return Path(recorded)
    return current.data_dir


def model_recipe(merged: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The recipe that applies: `recipe = NAME` borrows a registry model's; else the model's own."""
    from mnist_tiny.models.refs import get_spec, resolve

    borrowed = merged.get("recipe")
    if isinstance(borrowed, str) and borrowed:
        return dict(get_spec(borrowed).recipe), f"recipe of {borrowed}"
    model = merged.get("model", Settings.model_fields["model"].default)
    if not isinstance(model, str):
        return {}, "recipe"
    return resolve(model).recipe, f"recipe of {model}"


def _describe(error: ValidationError, source: dict[str, str]) -> str:
    problems = []
    for err in error.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(field, FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown setting {field!r}{hint} in {source.get(field, 'settings')}")
            continue
        where = source.get(field, "default")
        if where == "environment":
            where = f"{ENV_PREFIX}{field.upper()}"
        elif where == "command line":
            where = f"--{field.replace('_', '-')}"
        elif where == "--set":
            where = f"--set {field}={err.get('input')}"
        problems.append(f"invalid setting {field!r} = {err.get('input')!r} (from {where}): {err['msg']}")
    return "; ".join(problems)
