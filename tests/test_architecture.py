"""The package's structure, checked: no import circle, kernels and io are leaves, the
reference loop imports no kernels, and one module alone dispatches between the two.

Imports are read with ``ast`` from the sources, deferred imports inside functions
included, so a circle cannot hide behind a function-level import.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "rnnlab"


def _modules() -> dict:
    mods = {}
    for f in ROOT.rglob("*.py"):
        parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _resolve(name, level, here, is_pkg):
    if level == 0:
        return name
    base = here.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def import_graph() -> dict:
    """module -> the set of rnnlab modules it imports (anywhere in its source)."""
    mods = _modules()
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        is_pkg = f.name == "__init__.py"
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module or "", node.level, m, is_pkg)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and t.startswith("rnnlab"):
                    edges[m].add(t)
    return edges


def circles(edges: dict) -> list:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def edges():
    return import_graph()


def test_the_graph_is_read(edges):
    # the reader must see real arrows, or every check below would pass vacuously
    assert "rnnlab.engine" in edges["rnnlab.cells.base"]
    assert {"rnnlab.kernels", "rnnlab.recurrent"} <= edges["rnnlab.engine"]


def test_no_import_circle(edges):
    assert circles(edges) == []


def test_a_circle_would_be_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_kernels_are_leaves(edges):
    bad = {(m, t) for m, ts in edges.items() if m.startswith("rnnlab.kernels")
           for t in ts if not t.startswith("rnnlab.kernels")}
    assert bad == set()


def test_io_imports_only_the_validators_and_the_version(edges):
    assert edges["rnnlab.io"] <= {"rnnlab.checks", "rnnlab._version"}


def test_the_reference_loop_imports_no_kernels(edges):
    assert edges["rnnlab.recurrent"] == set()


def test_one_module_sees_both_the_loop_and_the_kernels(edges):
    both = {m for m, ts in edges.items()
            if "rnnlab.recurrent" in ts and any(t.startswith("rnnlab.kernels") for t in ts)}
    assert both == {"rnnlab.engine"}


def test_cells_read_no_dispatch_but_through_the_engine(edges):
    # the cell modules hold the maths; only the layer front (base) runs the engine
    for name in ("rnnlab.cells.cell", "rnnlab.cells.elman", "rnnlab.cells.lstm",
                 "rnnlab.cells.gru", "rnnlab.cells.ffnn", "rnnlab.cells.zoneout"):
        assert not any(t.startswith(("rnnlab.kernels", "rnnlab.engine")) for t in edges[name])


#: the rows of docs/architecture.md's drawing, top to bottom: a module may import from its
#: own row and the rows below it
ROWS = [
    "cli",
    "lm lmrun apps demo sweep bench interop onnx sklearn sktime report environment",
    "train bptt optim schedules clip checkpoint",
    "diagnostics",
    "saving",
    "network losses",
    "cells.elman cells.lstm cells.gru cells.ffnn cells",
    "cells.base stream",
    "engine",
    "recurrent kernels",
    "cells.cell cells.zoneout dropout io checks init activations plots progress runlock "
    "parallel _version data svg tensorboard",
]


def _row(module: str):
    """The row of ``module`` (a submodule sits in its package's row), or None."""
    best = None
    for i, row in enumerate(ROWS):
        for name in row.split():
            name = f"rnnlab.{name}"
            if (module == name or module.startswith(name + ".")) and (
                    best is None or len(name) > len(best[0])):
                best = (name, i)
    return None if best is None else best[1]


def test_every_module_has_a_row(edges):
    assert sorted(m for m in edges if _row(m) is None) == ["rnnlab", "rnnlab.__main__"]


def test_nothing_imports_a_row_above_its_own(edges):
    up = [(m, t) for m, ts in edges.items() if _row(m) is not None
          for t in ts if _row(t) is not None and _row(t) < _row(m)]
    assert up == []
