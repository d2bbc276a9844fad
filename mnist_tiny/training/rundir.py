"""A run directory: its name, its creation (never over someone else's files), its lock and its metrics file.

One process trains in a run directory at a time (an advisory lock on the directory), a fresh run never writes
into a directory that holds files, and a resumed run only into its own (the one whose settings.json matches).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Callable

from mnist_tiny.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one run at a time is up to the user
    fcntl = None

# Settings a resume may change (where the data lives, what runs it); every other one must match the run's own.
RESUME_MAY_CHANGE = {"data_dir", "device", "threads", "processes", "download", "mirror", "out", "verify_data"}


def run_name(model: str) -> str:
    """A model reference as a directory name: `fast-11k`, `mynet.py:Net` -> `mynet-Net`."""
    path, _, attr = model.rpartition(":") if ":" in model else (model, "", "")
    stem = Path(path).stem if path.endswith(".py") or "/" in path else path.rsplit(".", 1)[-1]
    name = "-".join(part for part in (stem, attr) if part)
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name) or "model"


def default_out_dir(model: str) -> Path:
    return Path("runs") / f"{run_name(model)}-{datetime.now():%Y%m%d-%H%M%S}"


class RunLock:
    """Held while a process trains in `out`: a second `train --resume` of the same run is refused, not interleaved.

    The lock is on the directory itself (flock on its descriptor): no file to leave behind or to race over."""

    def __init__(self, out: Path):
        self.out, self.fd = Path(out), None

    def acquire(self) -> "RunLock":
        if fcntl is None:
            return self
        try:
            fd = os.open(self.out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError as e:
            raise UserError(f"run directory {self.out}: cannot open ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UserError(f"run directory {self.out}: another training process is using it; "
                            "wait for it to finish or stop it first", 2) from None
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def create(out: Path, settings_json: str) -> RunLock:
    """Make a fresh run directory, lock it, record the settings. Refused when it already holds files."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory", 2)
    if out.is_dir() and any(out.iterdir()):
        raise UserError(f"--out {out}: directory already holds files; choose a new one, or --resume {out / 'last.pt'}", 2)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create ({e.strerror})", 2) from None
    lock = RunLock(out).acquire()
    try:
        if any(out.iterdir()):  # another run created it between our check and the lock
            raise UserError(f"--out {out}: another run started in this directory; choose a new one", 2)
        write_text_atomic(out / "settings.json", settings_json)
    except BaseException:
        lock.release()
        raise
    return lock


def reopen(out: Path, state: dict[str, Any], resume: Path, epochs: int) -> RunLock:
    """Lock a run directory for `--resume`: it must be the checkpoint's own, and the run must not be finished.

    A last.pt copied into another run's folder would otherwise overwrite that run's best.pt and summary."""
    lock = RunLock(out).acquire()
    try:
        _check_own(out, state, resume, epochs)
    except BaseException:
        lock.release()
        raise
    return lock


def _check_own(out: Path, state: dict[str, Any], resume: Path, epochs: int) -> None:
    recorded = state.get("settings") or {}
    path = out / "settings.json"
    try:
        if not path.is_file() or path.stat().st_size > 1_000_000:
            raise ValueError("is missing")
        saved = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(saved, dict):
            raise ValueError("holds no settings")
    except (ValueError, OSError, UnicodeDecodeError) as e:
        reason = str(e) if str(e) in ("is missing", "holds no settings") else "cannot be read"
        raise UserError(f"--resume {resume}: {out} is not this run's directory (its settings.json {reason}); "
                        "resume from the last.pt inside the run's own directory", 2) from None
    differ = sorted(k for k in set(saved) | set(recorded) if k not in RESUME_MAY_CHANGE
                    and saved.get(k) != recorded.get(k))
    if differ:
        raise UserError(f"--resume {resume}: {out} holds another run (its settings.json differs in "
                        f"{', '.join(differ[:5])}); resume from the last.pt inside the run's own directory", 2)
    if finished(state, epochs) and (out / "summary.json").is_file():
        raise UserError(f"--resume {resume}: this run already finished its {epochs} epochs "
                        f"(its results are in {out / 'summary.json'})", 2)


def finished(state: dict[str, Any], epochs: int) -> bool:
    position = state.get("resume") or {}
    return position.get("epoch", 0) >= epochs and position.get("batch", 0) == 0


def write_atomic(path: Path, write: Callable[[BinaryIO], None], new: bool = False) -> None:
    """`write(file)` into a temporary file beside `path`, fsync, then rename: a crash or a full disk leaves the old
    file as it was. A failure is one UserError naming the file. `new`: `path` must not exist when the file lands
    (a hard link, which fails on an existing name, instead of a rename that would replace what appeared there
    meanwhile)."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the user's usual permissions
        if new:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise UserError(f"{path}: appeared while it was being written; it is kept, and nothing was "
                                "written over it") from None
        else:
            os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch's own writer reports a failed write as a RuntimeError
        kept = " (the previous one is kept)" if path.exists() else ""
        reason = getattr(e, "strerror", None) or (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise UserError(f"cannot write {path}: {reason}{kept}") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def rewrite_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """metrics.jsonl as the checkpoint knows it: a crash between a row and its checkpoint leaves no repeated epoch."""
    write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history))


def append_metrics(out: Path, row: dict[str, Any]) -> None:
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
