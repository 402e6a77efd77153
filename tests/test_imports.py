"""The import graph of xdyn: no cycles, no upward imports across the layers.

Every module of the package is parsed with :mod:`ast` (imports inside
functions count: a lazy import is still a dependency) and each import of an
``xdyn`` module becomes an edge. A layer may import from its own layer and
from the layers below it, never from above; ``docs/architecture.rst``
describes the same table.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xdyn"

# Bottom to top. A family is the first name under ``xdyn`` (``xdyn.systems.base``
# belongs to ``systems``); "" is the package facade ``xdyn/__init__.py``, which
# registers the accessor.
LAYERS = [
    {"utils", "_threads", "_version", "_registry", "_labels", "_units"},
    {"metrics", "model_selection", "exceptions", "plot"},
    {"systems", "preprocessing"},
    {"observe", "datasets"},
    {"nn"},
    {"assimilation", "rom", "closure", "forecast"},
    {"accessor", "experiments", ""},
    {"bench", "bench_kolsol", "bench_ldensf", "bench_sweep", "bench_train"},
    {"cli"},
]
LAYER = {family: level for level, families in enumerate(LAYERS) for family in families}

# Shared foundations import no family at all: only these.
FOUNDATIONS = {
    "utils": {"utils", "_threads", "_version"},
    "nn": {"nn", "utils", "_threads", "_version", "exceptions"},
}

# Known edges still to be removed, each with the issue that removes it; keep
# this empty when none is left.
ALLOWED_UPWARD: set[tuple[str, str]] = set()
ALLOWED_CYCLE_EDGES: set[tuple[str, str]] = set()


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_package)
    return out


def _imports(name: str, path: Path, is_package: bool, modules) -> set[str]:
    """The xdyn modules that module ``name`` imports, anywhere in its body."""
    package = name if is_package else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                # ``from xdyn.systems import base`` imports the submodule
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in modules else module)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.add(node.args[0].value)
    return {m for m in found if (m == "xdyn" or m.startswith("xdyn.")) and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    edges = {name: _imports(name, path, is_pkg, modules) for name, (path, is_pkg) in modules.items()}
    unknown = {t for targets in edges.values() for t in targets if t not in modules}
    assert not unknown, f"imports of xdyn modules that do not exist: {sorted(unknown)}"
    return edges


def family(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_family_has_a_layer(graph):
    missing = sorted({family(m) for m in graph} - set(LAYER))
    assert not missing, (
        f"xdyn families {missing} are not in the layer table of tests/test_imports.py; "
        "add them (and to docs/architecture.rst)"
    )


def _upward(graph):
    bad = []
    for source, targets in graph.items():
        src = family(source)
        for target in sorted(targets):
            dst = family(target)
            if src == dst or (source, target) in ALLOWED_UPWARD:
                continue
            if src in FOUNDATIONS and dst not in FOUNDATIONS[src]:
                bad.append(f"{source} -> {target} ('{src}' imports no family; only {sorted(FOUNDATIONS[src])})")
            elif LAYER.get(dst, -1) > LAYER.get(src, -1):
                bad.append(f"{source} -> {target} (layer {LAYER[src]} '{src}' imports layer {LAYER[dst]} '{dst}')")
    return bad


def test_no_upward_imports(graph):
    bad = _upward(graph)
    assert not bad, "upward imports:\n" + "\n".join(bad)


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if (v, w) in ALLOWED_CYCLE_EDGES:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles(graph):
    cycles = _cycles(graph)
    detail = [
        " <-> ".join(c) + "\n    " + "; ".join(
            f"{a} -> {b}" for a in c for b in sorted(graph[a]) if b in c
        )
        for c in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(detail)


# The ``bench`` extra (peer libraries for cross-checks) is optional: a module
# that imports one at module level would break ``import xdyn.<module>`` and the
# doctest collection on an installation without it.
OPTIONAL_PEERS = {"dapper", "kolsol"}


def _module_level_imports(tree):
    """Imports executed when the module is imported: not inside a function,
    nor inside a ``try`` that handles ImportError."""
    out = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in child.handlers
            ):
                continue
            if isinstance(child, ast.Import):
                out.extend(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and not child.level:
                out.append(child.module)
            visit(child)

    visit(tree)
    return out


def test_optional_peers_are_imported_lazily():
    bad = []
    for name, (path, _) in _modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        bad += [f"{name} imports {m}" for m in _module_level_imports(tree)
                if m.split(".")[0] in OPTIONAL_PEERS]
    assert not bad, "import the bench extra inside the function that needs it:\n" + "\n".join(bad)


# Training goes through xdyn.nn (skorch): a gradient step written elsewhere is a
# hand-written training loop. Exceptions name why they are not training.
GRADIENT_STEP_ALLOWED = {
    "xdyn.assimilation.var4d": "minimises the 4D-Var cost of one window (L-BFGS), no training",
}


def test_training_loops_live_in_nn():
    bad = []
    for name, (path, _) in _modules().items():
        if family(name) == "nn" or name in GRADIENT_STEP_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("backward", "zero_grad")):
                bad.append(f"{name}:{node.lineno} calls .{node.func.attr}()")
            if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                    alias.name == "DataLoader" or alias.name.endswith(".DataLoader")
                    for alias in node.names):
                bad.append(f"{name}:{node.lineno} imports DataLoader")
    assert not bad, "train through xdyn.nn.XdynNet (get_loss/train_step), not a loop:\n" + "\n".join(bad)


def test_the_checker_sees_cycles_and_function_level_imports(tmp_path):
    fake = {"xdyn.a": {"xdyn.b"}, "xdyn.b": {"xdyn.c"}, "xdyn.c": {"xdyn.a"}, "xdyn.d": set()}
    assert _cycles(fake) == [["xdyn.a", "xdyn.b", "xdyn.c"]]
    upward = {"xdyn.systems.base": {"xdyn.assimilation.enkf", "xdyn.utils"}, "xdyn.nn.net": {"xdyn.systems"}}
    assert len(_upward(upward)) == 2
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from .base import g\n    import xdyn.plot\n")
    modules = {"xdyn.systems.base": None, "xdyn.systems.m": None, "xdyn.plot": None}
    assert _imports("xdyn.systems.m", src, False, modules) == {"xdyn.systems.base", "xdyn.plot"}
    lazy = ast.parse("import numpy\ntry:\n    import kolsol\nexcept ImportError:\n    pass\n"
                     "class A:\n    import dapper.mods\ndef f():\n    import dapper\n")
    assert _module_level_imports(lazy) == ["numpy", "dapper.mods"]
