"""The wire layer is sans-I/O: it imports the standard library and itself, nothing else."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import lightmail.imap.wire

WIRE = Path(lightmail.imap.wire.__file__).parent
BANNED_STDLIB = {"asyncio", "socket", "ssl", "selectors", "threading", "subprocess"}


@pytest.mark.parametrize("path", sorted(WIRE.rglob("*.py")), ids=lambda p: str(p.relative_to(WIRE)))
def test_wire_module_imports_only_stdlib(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "use absolute imports"
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if name.startswith("lightmail."):
                assert name.startswith(("lightmail.imap.wire", "lightmail.sansio")), name
            else:
                assert top in sys.stdlib_module_names, name
                assert top not in BANNED_STDLIB, name
