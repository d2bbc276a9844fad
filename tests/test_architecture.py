"""The house rules, checked: imports point one way (function-level imports count), no function over 100 lines,
the registry is a leaf, and start-up stays light."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "mnist_tiny"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "starter" not in p.parts}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every package module `path` imports, at module level or inside functions (not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules and n != "mnist_tiny"}
    return found


def test_no_import_cycle_inside_the_package():
    modules = _modules()
    graph = {name: _imports(path, modules) - {name} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " → ".join(trail[trail.index(nxt):] + [node, nxt])
                                     if nxt in trail else f"import cycle through {node} → {nxt}")
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert graph["mnist_tiny.models.registry"] == set(), "the registry is a leaf"
    for name, targets in graph.items():  # models/ sits at the bottom: it imports nothing above it
        if name.startswith("mnist_tiny.models"):
            assert all(t.startswith(("mnist_tiny.models", "mnist_tiny.errors", "mnist_tiny.choices",
                                     "mnist_tiny.process_imports")) for t in targets), (name, targets)
        if name.startswith("mnist_tiny.fast"):  # the CPU seam knows torch, not the package (but a process's malloc)
            assert all(t.startswith(("mnist_tiny.fast", "mnist_tiny.process_memory")) for t in targets), (name, targets)
    assert graph["mnist_tiny.process_memory"] == set(), "the process's malloc is a leaf (training and the server)"
    assert graph["mnist_tiny.process_imports"] == set(), "how torch is imported is a leaf (the registry completes it)"


def test_no_function_longer_than_100_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 100:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not long, long


def test_help_and_models_do_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from mnist_tiny.cli.app import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
