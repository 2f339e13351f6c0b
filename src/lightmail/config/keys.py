"""How a configuration key is declared: on a field of a ``config.ini`` section class.

:func:`section` makes a frozen, slotted dataclass of a section; :func:`declare`
makes one of its fields and keeps the key's default text, parser, allowed
words (the last two from its :class:`~lightmail.config.values.Value`) and
documentation in the field's metadata; :func:`declared_keys` reads them back,
section by section in field order, for the loader.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, TypeVar, dataclass_transform

from lightmail.config.values import Value

_METADATA = "lightmail.config"


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key as declared on its settings field."""

    section: str
    name: str
    default: str  # the text a key that is not given stands for
    parse: Callable[[str], object]  # raises ValueError
    allowed: str  # completes "... is invalid: expected <allowed>"
    doc: str  # one line for people


_T = TypeVar("_T")


def declare(text: str, value: Value[_T], doc: str, *, secret: bool = False) -> _T:
    """A settings field for one key: the text a missing key stands for, its kind of
    value (the parser and what a wrong value is told to be), and a line of
    documentation. The field's type is what the parser returns, so mypy checks the
    two agree. A ``secret`` stays out of ``repr()``."""
    key = Key("", "", text, value.parse, value.allowed, doc)
    return field(repr=not secret, metadata={_METADATA: key})  # type: ignore[no-any-return]


@dataclass_transform(frozen_default=True, field_specifiers=(declare,))
def section(cls: type[_T]) -> type[_T]:
    """A ``config.ini`` section: a frozen, slotted dataclass whose fields use :func:`declare`."""
    return dataclass(frozen=True, slots=True)(cls)


def declared_keys(settings: type[Any]) -> tuple[Key, ...]:
    """Every key of the sections that are fields of ``settings``, in declaration order."""
    hints = typing.get_type_hints(settings)
    return tuple(
        replace(key.metadata[_METADATA], section=part.name, name=key.name)
        for part in fields(settings)
        if is_dataclass(hints[part.name])
        for key in fields(hints[part.name])
    )
