"""The package's layers import only downward, and no two modules import each other (directly or not).

Layers, bottom to top (a module may import its own layer and the ones below):

0. ``sbirlab`` (the package root), ``sbirlab.io``, ``sbirlab.config``, ``sbirlab._ranks_numba``
1. ``sbirlab.data``
2. ``sbirlab.models.backbone``, ``sbirlab.models.prompts``, ``sbirlab.models.losses``
3. ``sbirlab.models.methods``, ``sbirlab.models.registry``
4. ``sbirlab.train``, ``sbirlab.metrics``, ``sbirlab.pretrain``
5. ``sbirlab.experiment``, ``sbirlab.generalisation``
6. ``sbirlab.viz``, ``sbirlab.widgets``, ``sbirlab.reports``, ``sbirlab.tables``, ``sbirlab.modelcard``,
   ``sbirlab.analysis``, ``sbirlab.teaching``
7. ``sbirlab.cli``, ``sbirlab.__main__``, ``sbirlab.notebook``

Imports inside functions count as much as those at the top of a file: a deferred import is still a
dependency, and hiding one in a function is how cycles crept in before.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "sbirlab"

LAYERS: list[tuple[str, ...]] = [
    ("sbirlab", "sbirlab.io", "sbirlab.config", "sbirlab._ranks_numba"),
    ("sbirlab.data",),
    ("sbirlab.models", "sbirlab.models.backbone", "sbirlab.models.prompts", "sbirlab.models.losses"),
    ("sbirlab.models.methods", "sbirlab.models.registry"),
    ("sbirlab.train", "sbirlab.metrics", "sbirlab.pretrain"),
    ("sbirlab.experiment", "sbirlab.generalisation"),
    ("sbirlab.viz", "sbirlab.widgets", "sbirlab.reports", "sbirlab.tables", "sbirlab.modelcard",
     "sbirlab.analysis", "sbirlab.teaching"),
    ("sbirlab.cli", "sbirlab.__main__", "sbirlab.notebook"),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def layer_of(mod: str) -> int:
    """The layer of ``mod``: the one holding its longest listed prefix."""
    best, best_len = None, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            if (mod == n or mod.startswith(n + ".")) and len(n) > best_len:
                best, best_len = i, len(n)
    if best is None:
        raise AssertionError(f"module {mod} is in no layer of tests/unit/test_architecture.py: add it")
    return best


def imports_of(mod: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The sbirlab modules ``mod`` imports anywhere in its file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != "sbirlab" and not target.startswith("sbirlab."):
                continue
            for alias in node.names:  # ``from . import distributed`` imports a module
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name == "sbirlab" or a.name.startswith("sbirlab."))
    out.discard(mod)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports_of(m, p, known) for m, p in known.items()}


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_no_upward_import():
    bad = []
    for m, deps in sorted(import_graph().items()):
        for d in sorted(deps):
            if layer_of(d) > layer_of(m) and not m.startswith(d + "."):
                bad.append(f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (as a list of modules) or ``None``. A package importing its own submodules
    (``sbirlab.widgets`` re-exporting ``sbirlab.widgets.engine``) is not a cycle unless a submodule
    imports the package back."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycle():
    graph = import_graph()
    # the root package only registers open_clip configs: everything may import it
    graph = {m: {d for d in deps if d != "sbirlab"} for m, deps in graph.items()}
    cyc = _cycle(graph)
    assert cyc is None, "import cycle: " + " -> ".join(cyc)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The helpers see a deferred upward import and a two-module cycle (so the tests above can fail)."""
    (tmp_path / "a.py").write_text("def f():\n    from .b import g\n")
    known = {"sbirlab.data.a": tmp_path / "a.py", "sbirlab.data.b": tmp_path / "b.py"}
    deps = imports_of("sbirlab.data.a", tmp_path / "a.py", known)
    assert deps == {"sbirlab.data.b"}
    (tmp_path / "c.py").write_text("from ..experiment import run_experiment\n")
    up = imports_of("sbirlab.models.c", tmp_path / "c.py", {})
    assert up == {"sbirlab.experiment"} and layer_of("sbirlab.experiment") > layer_of("sbirlab.models.c")
    assert _cycle({"x": {"y"}, "y": {"x"}}) in (["x", "y", "x"], ["y", "x", "y"])
    assert _cycle({"x": {"y"}, "y": set()}) is None


@pytest.mark.parametrize("name", ["_atomic_json", "_atomic_write", "_atomic_save", "_atomic_savez"])
def test_one_home_for_atomic_writes(name):
    """Atomic writes live in sbirlab.io only (they were copied into 9 modules before)."""
    hits = [str(p.relative_to(PKG.parent)) for p in PKG.rglob("*.py")
            if f"def {name}(" in p.read_text(encoding="utf-8")]
    assert not hits, f"{name} defined in {hits}; use sbirlab.io"
