"""docs/architecture.md stays true: what it cites exists, and the repository points
nowhere outside itself.

The page cites code in backticks: paths (relative to the repository, or to
``src/lightmail/``), ``path::name`` for a function, class or constant defined in
that file (``Class.method`` too), ``Class.attribute``, names of classes and
functions, ``table.column`` and metric names. Each is checked here, so a rename
that forgets the page fails this test.
"""

from __future__ import annotations

import ast
import importlib
import re
from functools import cache
from pathlib import Path

import pytest

from lightmail.storage.db import tables

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "lightmail"
PAGE = ROOT / "docs" / "architecture.md"

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_TICKED = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"[\w.-]+(/[\w.-]*)*")
_FILE_SUFFIXES = (".py", ".md", ".ini", ".toml", ".sh", ".lock")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.\w+)+")
_CLASS_NAME = re.compile(r"_?[A-Z]\w*[a-z]\w*")


def _cited() -> list[str]:
    text = _FENCE.sub("", PAGE.read_text(encoding="utf-8"))
    return sorted(set(_TICKED.findall(text)))


def _is_path(token: str) -> bool:
    if token.startswith(("./", "/", "~")) or not _PATH.fullmatch(token):
        return False
    return "/" in token or token.endswith(_FILE_SUFFIXES)


def _resolve(path: str) -> Path:
    """A cited path: from the repository root when its first name is there, else
    from the package."""
    first = path.split("/")[0]
    return ROOT / path if (ROOT / first).exists() else PACKAGE / path


def _definitions(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Top-level names, and ``Class.member`` for every class member (methods,
    class attributes, dataclass fields, enum members, ``self.x`` assignments)."""
    top: set[str] = set()
    members: set[str] = set()
    body = tree.body if isinstance(tree, ast.Module) else []
    for node in body:
        top |= _bound(node)
        if isinstance(node, ast.ClassDef):
            for member in ast.walk(node):
                if member is node:
                    continue
                if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    members.add(f"{node.name}.{member.name}")
                elif isinstance(member, ast.Attribute) and isinstance(member.ctx, ast.Store):
                    members.add(f"{node.name}.{member.attr}")
            for statement in node.body:
                members |= {f"{node.name}.{name}" for name in _bound(statement)}
    return top, members


def _bound(node: ast.AST) -> set[str]:
    """The names one statement binds at its own level."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    return {target.id for target in targets if isinstance(target, ast.Name)}


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


@cache
def _everything() -> tuple[frozenset[str], frozenset[str]]:
    """Every name defined anywhere in the package and the tests, with function
    parameters; and every ``Class.member``."""
    names: set[str] = set()
    members: set[str] = set()
    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        tree = _tree(path)
        top, inner = _definitions(tree)
        names |= top | {member.split(".", 1)[1] for member in inner}
        members |= inner
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
                names |= {arg.arg for arg in ast.walk(node.args) if isinstance(arg, ast.arg)}
    return frozenset(names), frozenset(members)


def _problem(token: str) -> str | None:
    """Why ``token`` names nothing that exists, or None if it does (or is prose)."""
    if "::" in token:
        path, _, name = token.partition("::")
        if not path:
            return None  # the page explaining the notation
        file = _resolve(path)
        if not file.is_file():
            return f"{path} does not exist"
        top, inner = _definitions(_tree(file))
        return None if name in top | inner else f"{path} defines no {name}"
    if _is_path(token):
        return None if _resolve(token).exists() else f"{token} does not exist"
    if token.startswith("lightmail_") and _IDENTIFIER.fullmatch(token):
        metric = token.removesuffix("_total")
        metrics = (PACKAGE / "metrics.py").read_text(encoding="utf-8")
        return None if f'"{metric}"' in metrics else f"metrics.py declares no {metric}"
    name = token.removesuffix("()")
    names, members = _everything()
    if _DOTTED.fullmatch(name):
        first, rest = name.split(".", 1)
        if first in tables.metadata.tables:
            columns = tables.metadata.tables[first].columns
            return None if rest in columns else f"table {first} has no column {rest}"
        if _CLASS_NAME.fullmatch(first):
            return None if name in members else f"no class {first} with a member {rest}"
        return _importable(name)
    if not _IDENTIFIER.fullmatch(name):
        return None  # a reply, a setting, a command line: prose
    if _CLASS_NAME.fullmatch(name) or "_" in name:
        return None if name in names else f"nothing is named {name}"
    return None  # a plain word (a verb, a keyword, a parameter)


def _importable(dotted: str) -> str | None:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(value, attribute):
                return f"{'.'.join(parts[:cut])} has no {attribute}"
            value = getattr(value, attribute)
        return None
    return f"no module {parts[0]}"


@pytest.mark.parametrize("token", _cited())
def test_what_the_page_cites_exists(token: str) -> None:
    assert _problem(token) is None, _problem(token)


def test_the_checker_catches_a_wrong_citation() -> None:
    assert _problem("mailstore/nowhere.py") is not None
    assert _problem("mailstore/core.py::StoreCore._no_such_step") is not None
    assert _problem("StoreCore._no_such_step") is not None
    assert _problem("NoSuchStore") is not None
    assert _problem("messages.no_such_column") is not None
    assert _problem("lightmail_no_such_metric_total") is not None
    assert _problem("storage/commit.py::BlobCommit._commit_new_blob") is None


def _invariants() -> set[str]:
    section = PAGE.read_text(encoding="utf-8").split("\n## Invariants\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return set(re.findall(r"^(\d+)\. \*\*", section, re.MULTILINE))


def _files() -> list[Path]:
    files = [ROOT / name for name in ("README.md", "config.example.ini", "pyproject.toml")]
    for folder in ("docs", "src", "tests", "scripts", "bench"):
        found = (ROOT / folder).rglob("*")
        files += [p for p in found if p.is_file() and "__pycache__" not in p.parts]
    return sorted(files)


def test_code_cites_invariants_the_page_has() -> None:
    numbered = _invariants()
    assert numbered == {str(n) for n in range(1, len(numbered) + 1)}
    for path in _files():
        if path.suffix not in (".py", ".md", ".toml", ".ini", ".sh"):
            continue
        for number in re.findall(r"\binvariant (\d+)", path.read_text(encoding="utf-8")):
            assert number in numbered, f"{path.relative_to(ROOT)} cites invariant {number}"


# The team's notes outside the repository. Built in pieces, so that this file
# does not match itself.
_OUTSIDE = re.compile(
    "|".join([r"\.\./" + "shared", "/" + "work/", "DES" + r"IGN\b", "STY" + r"LE\.md"])
)


def test_the_repository_points_nowhere_outside_itself() -> None:
    for path in _files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found = _OUTSIDE.search(text)
        assert found is None, f"{path.relative_to(ROOT)} refers to {found[0]!r}"


def test_the_readme_links_to_the_page() -> None:
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
