"""The import graph runs one way (DEVELOPERS.md "Layering"): each top-level package imports only
packages of a lower layer (or itself), and project imports sit at the top of each module.

    core -> landscapes -> discrete, flows -> runner -> analysis -> paper_figs -> adamflow
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: package -> layer; a package may import only packages with a smaller layer (or itself)
LAYERS = {"core": 0, "landscapes": 1, "discrete": 2, "flows": 2, "runner": 3, "analysis": 4,
          "paper_figs": 5, "adamflow": 6}

#: function-local imports of *third-party* modules allowed because of import time (seconds saved
#: on every CLI start): matplotlib (pyplot pulls in a GUI backend search) and scipy (only the
#: studies and checks that need it). Project packages are never imported inside a function.
LAZY_THIRD_PARTY = {"matplotlib", "scipy", "tqdm", "torchdiffeq",
                    "torchode", "jax", "diffrax",     # the optional [bench] peers
                    "distributed"}                    # the optional [dask] executor of `sweep`


def _modules():
    for pkg in LAYERS:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield pkg, path


def _imports(tree: ast.AST):
    """(top-level name, lineno, is_module_level) of every import in ``tree``."""
    module_level = {id(n) for n in tree.body}
    for node in tree.body:       # also count imports nested in module-level if/try blocks
        if isinstance(node, (ast.If, ast.Try)):
            module_level |= {id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name.split(".")[0], node.lineno, id(node) in module_level
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno, id(node) in module_level


def test_packages_import_only_lower_layers():
    bad = []
    for pkg, path in _modules():
        tree = ast.parse(path.read_text())
        for name, line, _ in _imports(tree):
            if name in LAYERS and name != pkg and LAYERS[name] >= LAYERS[pkg]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} (layer {LAYERS[name]} "
                           f">= {pkg}'s {LAYERS[pkg]})")
    assert not bad, "\n".join(bad)


def test_project_imports_at_module_level():
    bad = []
    for pkg, path in _modules():
        tree = ast.parse(path.read_text())
        for name, line, top in _imports(tree):
            if not top and name in LAYERS:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} inside a function")
    assert not bad, "\n".join(bad)


def test_third_party_lazy_imports_are_the_documented_ones():
    bad = []
    for pkg, path in _modules():
        tree = ast.parse(path.read_text())
        for name, line, top in _imports(tree):
            if not top and name not in LAYERS and name not in LAZY_THIRD_PARTY:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} inside a function")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("pkg", sorted(LAYERS))
def test_each_package_imports_alone(pkg):
    """Importing a package in a fresh interpreter works (no hidden cycle through a lazy import)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", f"import {pkg}"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
