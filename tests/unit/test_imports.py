"""The import graph of ``src/lightmail``: no cycle, and only the CLI and the worker
processes' layer above it (``lightmail.workers``) import the runtime.

The graph is read from the source with :mod:`ast`, so it holds every import a
module makes anywhere: at the top, inside functions and under
``TYPE_CHECKING``. A cycle hidden in a function or a type-only import is still
two parts that each need the other.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "lightmail"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted((SRC / PACKAGE).rglob("*.py"))}


def _imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The lightmail modules ``module`` imports, with each one's packages (whose
    ``__init__`` runs first) except the packages ``module`` itself is in."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            candidate = ".".join(parts[:i])
            if candidate in known and candidate not in own and candidate != module:
                found.add(candidate)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {module: _imported(module, path, known) for module, path in modules.items()}


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "lightmail.runtime" in graph["lightmail.cli"]
    assert "lightmail.accounts.tokens" in graph["lightmail.api.deps"]
    # A function-level import counts too: the runtime builds the API only when it listens.
    assert "lightmail.api.server" in graph["lightmail.runtime"]


def test_no_import_cycle() -> None:
    try:
        tuple(graphlib.TopologicalSorter(_graph()).static_order())
    except graphlib.CycleError as error:
        # graphlib lists each module before the ones it is imported by: reverse it.
        pytest.fail(f"import cycle: {' imports '.join(reversed(error.args[1]))}")


def test_only_the_cli_and_the_workers_import_the_runtime() -> None:
    importers = {module for module, imports in _graph().items() if "lightmail.runtime" in imports}
    assert importers == {
        "lightmail.cli",
        "lightmail.workers",  # runs it in one process ...
        "lightmail.workers.supervisor",  # ... or in each worker, after preparing the node
        "lightmail.workers.worker",
    }


def test_the_api_imports_no_storage() -> None:
    """The API reaches storage only through the mailstore, accounts and the health
    check the runtime hands it."""
    reached = {
        (module, imported)
        for module, imports in _graph().items()
        if module.startswith("lightmail.api")
        for imported in imports
        if imported.startswith("lightmail.storage")
    }
    assert reached == set()


def test_caldav_imports_no_storage() -> None:
    """CalDAV reaches storage only through the calendar store and accounts."""
    reached = {
        (module, imported)
        for module, imports in _graph().items()
        if module.startswith("lightmail.dav")
        for imported in imports
        if imported.startswith(("lightmail.storage", "lightmail.mailstore"))
    }
    assert reached == set()
