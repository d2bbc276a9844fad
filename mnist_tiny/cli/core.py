"""What every command module of the CLI shares: the Typer app, one-line errors, `--set` parsing, strict JSON."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from mnist_tiny.errors import UserError


class _OneLineErrors(TyperGroup):
    """A usage error (an unknown flag, `--split foo`) is one line on stderr and exit 2, like every other error,
    instead of Typer's framed panel."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        except typer.TyperException as e:
            if type(e).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
                ctx = getattr(e, "ctx", None)
                hint = f" (see `{ctx.command_path} -h`)" if ctx is not None else ""
                message = e.format_message().replace("Value error, ", "") if hasattr(e, "format_message") else str(e)
                from mnist_tiny.errors import printable

                print(printable(f"error: {message}{hint}"), file=sys.stderr)
            sys.exit(getattr(e, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="mnist-tiny",
    help="Train, inspect and serve tiny convolutional networks for handwritten digits (MNIST).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
def _flags_take_no_value() -> None:
    """Rich help shows every option's type, `<bool>` for a flag too, as if it took a value: show nothing there."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is not None:
        TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _breakable(shown(self, ctx))


def _breakable(metavar):
    """`<onecycle|cosine|constant>` as `<onecycle | cosine | constant>`: a narrow terminal wraps it between the
    choices, never inside one (Rich folds a word that does not fit its column)."""
    if isinstance(metavar, str) and len(metavar) > 14 and "|" in metavar:
        return metavar.replace("|", " | ")
    return metavar


_flags_take_no_value()
# What a reader-only install (`pip install mnist-tiny`) leaves out, and the extra that brings it.
EXTRAS = {"torch": "train", "torchvision": "train", "onnx": "train", "fastapi": "serve", "uvicorn": "serve",
          "multipart": "serve", "python_multipart": "serve"}
MODEL_HELP = "Model: a registry name (`mnist-tiny models`), path/to/file.py:Class or module:Attr."
_state = {"debug": False}


def _is_main_process() -> bool:
    """False in torchrun's ranks 1.. : they train silently and leave the talking to rank 0."""
    return os.environ.get("RANK", "0") == "0"


def _version(value: bool) -> None:
    if value:
        from mnist_tiny import __version__

        typer.echo(f"mnist-tiny {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug


def command(fn):
    """Run a command so that a user error is one red line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from mnist_tiny.ui import render

        def error(message: str) -> None:
            if _is_main_process():
                render.error(message)

        try:
            return fn(*args, **kwargs)
        except UserError as e:
            if _state["debug"]:
                raise
            error(str(e))
            raise typer.Exit(e.exit_code) from None
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            error("interrupted")
            raise typer.Exit(130) from None
        except ModuleNotFoundError as e:
            extra = EXTRAS.get((e.name or "").split(".")[0])
            if _state["debug"] or extra is None:
                raise
            error(f"this needs {e.name}, which the reader-only install leaves out: "
                  f"pip install 'mnist-tiny[{extra}]' (or, from a clone, pip install '.[{extra}]')")
            raise typer.Exit(1) from None
        except OSError as e:  # a full disk, a read-only folder, a vanished file: say which, in words
            if _state["debug"]:
                raise
            where = f"{os.fsdecode(e.filename)}: " if e.filename is not None else ""
            error(f"{where}{e.strerror or e}")
            raise typer.Exit(1) from None
        except Exception as e:  # an unexpected failure: still one line unless --debug
            if _state["debug"]:
                raise
            error(f"{type(e).__name__}: {e} (run `mnist-tiny --debug ...` for the traceback)")
            raise typer.Exit(1) from None

    return wrapper


def _parse_set(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set rotate=15", 2)
        values[key.strip().replace("-", "_")] = value
    return values


def _print_json(data: Any) -> None:
    """Strict JSON: a value that is not finite (NaN, inf) is written as null, never as `NaN`."""
    sys.stdout.write(json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


