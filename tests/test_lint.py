"""The code base stays ruff-clean (the project's style gate runs with the tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_clean():
    paths = [p for p in ("rsnn_deploy", "tests", "benchmarks", "examples", "scripts") if (ROOT / p).exists()]
    res = subprocess.run([sys.executable, "-m", "ruff", "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:]


def _mypy_baseline() -> int:
    lines = (ROOT / "tests" / "mypy_baseline.txt").read_text().splitlines()
    return int(next(line for line in lines if line.strip() and not line.startswith("#")))


def test_mypy_errors_do_not_grow():
    """``mypy rsnn_deploy`` (config in pyproject.toml, cache in .mypy_cache) reports no more errors than allowed."""
    import re

    import pytest

    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    res = subprocess.run([sys.executable, "-m", "mypy", "rsnn_deploy"], cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"Found (\d+) errors? in", res.stdout)
    if found is None:
        assert res.returncode == 0 and "Success" in res.stdout, (res.stdout + res.stderr)[-3000:]
    count = int(found.group(1)) if found else 0
    baseline = _mypy_baseline()
    assert count <= baseline, (
        f"mypy: {count} errors, the baseline (tests/mypy_baseline.txt) allows {baseline}; fix the new ones:\n"
        + res.stdout[-3000:]
    )


# ----------------------------------------------------------------------------- import cycles

# Cycles that close only through imports inside functions (deferred), in modules other sessions own;
# each entry may only shrink or go. A new deferred cycle, or one that grows, fails the test.
_KNOWN_DEFERRED_CYCLES = [
    {"rsnn_deploy.model", "rsnn_deploy.fast_bptt", "rsnn_deploy.native", "rsnn_deploy.native_choice"},
    {"rsnn_deploy.tasks", "rsnn_deploy.tasks._mnist1d"},
    {"rsnn_deploy.export._nir_import", "rsnn_deploy.export._nir_parity"},
    {"rsnn_deploy.backends", *(f"rsnn_deploy.backends._{m}" for m in
                               ("emulator", "lava", "nengo", "nengo_loihi", "torch_fakequant", "torch_float"))},
    {"rsnn_deploy.cost", "rsnn_deploy.verify", "rsnn_deploy.verify._report", "rsnn_deploy.verify._run"},
]


def _package_modules() -> dict[str, Path]:
    out = {}
    for f in (ROOT / "rsnn_deploy").rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _imports(name: str, path: Path, modules: dict[str, Path], deferred: bool) -> set[str]:
    """The package modules ``name`` imports: at module level (``deferred``: inside functions too).

    ``if TYPE_CHECKING:`` blocks are skipped; ``from pkg import sub`` counts as importing ``pkg.sub``.
    """
    import ast

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def add(node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
            return
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, base] if base else parts)
        found.add(base)
        found.update(f"{base}.{a.name}" for a in node.names)

    def type_checking(node: ast.If) -> bool:
        t = node.test
        return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
            isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
        )

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                add(node)
            elif isinstance(node, ast.If):
                visit(node.orelse if type_checking(node) else node.body + node.orelse)
            elif isinstance(node, (ast.Try, ast.With)):
                visit(node.body + getattr(node, "orelse", []) + getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif deferred and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        add(sub)

    visit(ast.parse(path.read_text()).body)
    resolved = set()
    for mod in found:
        while mod and mod not in modules:  # `from pkg.mod import name` imports pkg.mod
            mod = mod.rpartition(".")[0]
        if mod and mod != name:
            resolved.add(mod)
    return resolved


def _cycles(deferred: bool) -> list[set[str]]:
    """Strongly connected components (more than one module) of the package's import graph."""
    modules = _package_modules()
    graph = {m: _imports(m, p, modules, deferred) for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[set[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_no_import_cycles_at_module_level():
    """No two modules of rsnn_deploy import each other, directly or around a loop, when they load."""
    assert _package_modules()["rsnn_deploy.neuron"]  # the scan sees the package
    assert _cycles(deferred=False) == []


def test_deferred_import_cycles_do_not_grow():
    """With imports inside functions counted, only the known cycles remain (each may shrink, none grow)."""
    found = _cycles(deferred=True)
    new = [sorted(c) for c in found if not any(c <= known for known in _KNOWN_DEFERRED_CYCLES)]
    assert not new, f"new import cycles (through imports inside functions): {new}"
