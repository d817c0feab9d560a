"""The layers point one way (docs/architecture.md): checked on the source tree, by AST.

sources < recording < engine < views < commands, with labs, the pytest plugin and the
CLI on top, and model/vocab/errors/bulk/json_codec underneath. A module may import its own layer
or any below it, never one above; and no set of modules imports itself round a cycle
(imports under `if TYPE_CHECKING:` are for annotations only and do not count).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wirecorr"

LAYERS = {
    "model": 0,
    "errors": 0,
    "bulk": 0,
    "json_codec": 0,
    "vocab": 0,
    "sources": 1,
    "recording": 2,
    "engine": 3,
    # The compiled cores' package sits with sources: its Python (`pure_requested`) and the
    # tracer's stop loop (tracer.pyx, imported by sources/tracer) need nothing above. Its
    # packets.pyx imports engine modules, but is not Python this test reads; only the
    # engine's packet feed imports it.
    "_core": 1,
    "views": 4,
    "commands": 5,
    "labs": 6,
    "pytest_plugin": 6,
    "cli": 7,
    "__main__": 8,
    "__init__": 8,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    assert top in LAYERS, f"{module}: give wirecorr.{top} a layer in tests/test_layers.py"
    return LAYERS[top]


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """wirecorr modules `path` imports at run time, resolved to modules of the tree."""
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                for stmt in node.orelse:
                    self.visit(stmt)
                return
            self.generic_visit(node)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module and node.module.split(".")[0] == "wirecorr":
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    target = full if full in modules else resolve(node.module)
                    if target:
                        found.add(target)

        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                if alias.name.split(".")[0] == "wirecorr" and (target := resolve(alias.name)):
                    found.add(target)

    Visitor().visit(ast.parse(path.read_text(), str(path)))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if target != "wirecorr" and _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycle() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if target == "wirecorr" or target not in graph:
                continue
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(" → ".join(c) for c in cycles)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The scan itself: an engine module importing a view is caught."""
    source = tmp_path / "x.py"
    source.write_text("from wirecorr.views.progress import Progress\n")
    modules = _modules()
    assert _imports(source, modules) == {"wirecorr.views.progress"}
    assert _layer("wirecorr.views.progress") > _layer("wirecorr.engine.session")
