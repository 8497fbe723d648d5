"""The emulator's modules import without cycles, and its server knows none of its routes.

A cycle between modules (a imports b imports a) works or fails depending on which one is imported
first, so the suite's own import order can hide it. Each module is imported first, in a fresh
interpreter state, here; and the import graph read from the source (imports inside functions
included, `if TYPE_CHECKING:` blocks excluded) must have no cycle at all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "emulator"

_SCRIPT = r"""
import importlib, sys, traceback
failures = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "emulator" or m.startswith("emulator.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failures.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\n".join(failures))
sys.exit(1 if failures else 0)
"""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__main__.py"  # runs the emulator when imported
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The emulator modules `name` imports when it runs (anywhere but `if TYPE_CHECKING:`)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):  # names defined by `base` itself
                found.add(base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {module for module in found if module in known and module != name}


def _route_modules(modules: dict[str, Path]) -> set[str]:
    """Modules that declare a module-level `ROUTES`."""
    routes = set()
    for name, path in modules.items():
        for node in ast.parse(path.read_text()).body:
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            if any(isinstance(t, ast.Name) and t.id == "ROUTES" for t in targets):
                routes.add(name)
    return routes


def test_every_emulator_module_imports_first() -> None:
    modules = sorted(_modules())
    assert len(modules) > 40  # the walk found the package
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, (
        f"modules that fail when imported first:\n{result.stdout}\n{result.stderr[-2000:]}"
    )


def test_the_import_graph_of_the_emulator_has_no_cycle() -> None:
    modules = _modules()
    graph = {name: _runtime_imports(name, path, set(modules)) for name, path in modules.items()}
    assert graph["emulator.app"], "the graph walk found no import of emulator.app"
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the stack, "done" after

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                walk(target, [*stack, target])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_server_imports_no_route_module() -> None:
    modules = _modules()
    route_modules = _route_modules(modules)
    assert {"emulator.arm", "emulator.entra", "emulator.mms", "emulator.admin"} <= route_modules
    server = modules["emulator.server"]
    imported: set[str] = set()
    for node in ast.walk(ast.parse(server.read_text())):  # TYPE_CHECKING blocks included
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    forbidden = route_modules | {"emulator.app"}
    assert imported & forbidden == set(), "emulator.server imports route modules"


def test_the_app_assembles_every_route_module() -> None:
    from emulator import app

    assembled = {module.__name__ for module in app.ROUTE_MODULES}
    assert assembled == _route_modules(_modules())
