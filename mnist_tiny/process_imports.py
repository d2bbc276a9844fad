"""How a process imports torch: without Python's cycle collector walking through the import, and without torch's
Python meta kernels until something needs them (docs/performance.md, "Start-up")."""

from __future__ import annotations

import gc
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

META_KERNELS = "torch._meta_registrations"


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while the block runs (imports), back as it was after.

    Importing torch makes a great many objects that live as long as the process; their allocations set the
    collector off hundreds of times, and each pass walks them again and finds nothing to free (the figures are in
    docs/performance.md). Reference counting still frees everything else at once."""
    if not gc.isenabled():  # someone chose to run without it: leave that alone
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Deferred(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """While torch imports, answers its `from torch import _meta_registrations` with an empty module. Afterwards,
    the first import of that module, or of one only it brings in, gets the real thing in torch's own order."""

    # What a plain `import torch` loads only through it (torch 2.14; a test checks the list). They import each
    # other in cycles that work only when torch._meta_registrations enters first, as it does in a plain import.
    ONLY_IT_BRINGS = ("torch._decomp", "torch._prims", "torch._refs", "torch.utils._content_store",
                      "torch.testing._internal.common_dtype")

    def __init__(self) -> None:
        self.importing_torch = True
        self.done = False

    def find_spec(self, fullname, path=None, target=None):
        if self.done or (fullname != META_KERNELS and fullname not in self.ONLY_IT_BRINGS):
            return None
        if self.importing_torch:
            return importlib.machinery.ModuleSpec(fullname, self) if fullname == META_KERNELS else None
        self.done = True
        if fullname == META_KERNELS:
            return None  # the usual finders load it, and it brings the rest
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None:
            spec.loader = _MetaKernelsFirst(spec.loader)
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        pass


class _MetaKernelsFirst(importlib.abc.Loader):
    """Loads torch._meta_registrations, which imports the module asked for (whole), and hands that over."""

    def __init__(self, loader) -> None:
        self.loader = loader
        self.loaded = None

    def create_module(self, spec):
        importlib.import_module(META_KERNELS)
        self.loaded = sys.modules.get(spec.name)
        return self.loaded

    def exec_module(self, module) -> None:
        if module is not self.loaded:  # it did not come with the meta kernels: load it as usual
            self.loader.exec_module(module)


CHECKED_TORCH = "2.14.1"  # the torch whose imports the deferral was checked against (tests/test_process_imports.py)


def _torch_version() -> str | None:
    """The installed torch's version, read without importing it (its `version.py`)."""
    spec = importlib.util.find_spec("torch")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            text = (Path(folder) / "version.py").read_text(encoding="utf-8")
        except OSError:
            continue
        match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
        return match.group(1) if match else None
    return None


@contextmanager
def meta_kernels_deferred() -> Iterator[None]:
    """Import torch in the block without `torch._meta_registrations` (what that saves: docs/performance.md).

    That module registers Python kernels for the Meta dispatch key only: shapes without data, which torch.compile,
    torch.export, FakeTensor and `device="meta"` use, and eager CPU or CUDA work never does. The first import of it,
    or of a module only it brings in (the compiler and exporters import them), loads it whole. Code a user names
    runs after `torch_complete()`, since it may use meta tensors without importing anything. Only on the torch
    version it was checked on: another may need more of that module at once."""
    if "torch" in sys.modules or not (_torch_version() or "").startswith(CHECKED_TORCH):
        yield
        return
    finder = _Deferred()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        finder.importing_torch = False
        stub = sys.modules.get(META_KERNELS)
        ours = stub is not None and getattr(stub.__spec__, "loader", None) is finder
        if ours:
            del sys.modules[META_KERNELS]
        torch = sys.modules.get("torch")
        if ours and torch is not None:
            if getattr(torch, "_meta_registrations", None) is stub:
                delattr(torch, "_meta_registrations")
            # The one thing eager code needs from what waits: torch.Generator's metaclass, which
            # torch._prims.rng_prims sets (as this does: setting it again when that loads changes nothing).
            from torch._custom_class_base import CustomClassBaseMeta

            torch._C._set_generator_metaclass(CustomClassBaseMeta)
        else:  # torch did not ask for it, or failed to import: nothing waits
            finder.done = True


@contextmanager
def importing_torch() -> Iterator[None]:
    """How our commands import torch: the collector paused, the meta kernels deferred."""
    with collector_paused(), meta_kernels_deferred():
        yield


def torch_complete() -> None:
    """torch as a plain `import torch` leaves it: the deferred meta kernels loaded (before a user's code runs)."""
    if "torch" in sys.modules and META_KERNELS not in sys.modules:
        with collector_paused():
            importlib.import_module(META_KERNELS)
