"""The package root: lazy imports, its public names, and io as a leaf."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rnnlab

SRC = Path(rnnlab.__file__).parent


def loaded_after(statement: str) -> set:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=SRC.parent)
    return set(out.stdout.split())


def test_importing_a_submodule_loads_neither_the_trainer_nor_io_nor_numba():
    mods = loaded_after("import rnnlab.checks")
    assert "rnnlab.checks" in mods
    assert not {"rnnlab.train", "rnnlab.io", "rnnlab.network", "rnnlab.cells", "numba"} & mods
    assert not any(m.startswith("numba") for m in mods)


def test_names_at_the_root_import_on_first_use():
    mods = loaded_after("import rnnlab; rnnlab.Network")
    assert "rnnlab.network" in mods and "rnnlab.train" not in mods


@pytest.mark.parametrize("name", ["LSTM", "GRU", "Elman", "Network", "Trainer", "load", "save",
                                  "Stream", "layer_from_config", "RecurrentLayer",
                                  "__version__"])
def test_public_names(name):
    assert getattr(rnnlab, name) is not None
    assert name in dir(rnnlab)


def test_lazy_submodules_and_unknown_names():
    assert rnnlab.io.FORMAT == "rnnlab-model" and rnnlab.plots.figure
    assert rnnlab.save is rnnlab.saving.save
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        rnnlab.nothing  # noqa: B018


def imports_of(module: Path) -> set:
    """The rnnlab modules ``module`` imports, deferred imports included."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names |= {node.module} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("rnnlab")}
    return names


def test_io_is_a_leaf():
    assert imports_of(SRC / "io.py") <= {"_version", "checks"}
    assert imports_of(SRC / "checkpoint.py") <= {"io"}
