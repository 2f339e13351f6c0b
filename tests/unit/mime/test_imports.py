"""The MIME package is sans-I/O and layered: each module imports the standard library
(no I/O) and only the package modules before it in `LAYERS`, so there is no cycle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import lightmail.mailstore.mime

PACKAGE = Path(lightmail.mailstore.mime.__file__).parent
PREFIX = "lightmail.mailstore.mime"
LAYERS = [
    "headers",
    "words",
    "params",
    "codec",
    "transfer",
    "types",
    "addresses",
    "content",
    "delimiters",
    "sorting",
    "scanner",
]
BANNED_STDLIB = {"asyncio", "socket", "ssl", "selectors", "threading", "subprocess"}


def test_every_module_has_a_layer() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(LAYERS)


@pytest.mark.parametrize("module", LAYERS)
def test_module_imports_only_stdlib_and_lower_layers(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    below = {f"{PREFIX}.{name}" for name in LAYERS[: LAYERS.index(module)]}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "use absolute imports"
            names = [node.module or ""]
        else:
            continue
        for name in names:
            if name.startswith("lightmail."):
                assert name in below, f"{module} imports {name}"
            else:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names, name
                assert top not in BANNED_STDLIB, name
