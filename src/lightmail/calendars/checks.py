"""What a write to a calendar or address book is checked against before it touches
storage: the names in its path, the client's conditions, and the objects' content.
No I/O."""

from __future__ import annotations

from collections.abc import Sequence

from lightmail.calendars.ics import ParsedObject
from lightmail.calendars.kinds import CollectionKind
from lightmail.errors import InvalidCalendarData, InvalidValue, PreconditionFailed

_MAX_NAME = 255
_FORBIDDEN_NAME_CHARS = frozenset('/\\"<>') | frozenset(chr(c) for c in range(0x20))


def check_name(name: str, what: str) -> str:
    """A calendar's or object's path segment: 1 to 255 characters, no ``/``, quote,
    angle bracket, backslash or control character, not ``.`` or ``..``."""
    if (
        not name
        or len(name) > _MAX_NAME
        or name in (".", "..")
        or not _FORBIDDEN_NAME_CHARS.isdisjoint(name)
    ):
        raise InvalidValue(f"{name[:50]!r} is not a valid {what} name")
    return name


def check_conditions(
    name: str, etag: str | None, if_match: str | None, if_none_match: bool
) -> None:
    """Raise PreconditionFailed unless the client's ``If-Match`` (a quoted ETag or
    ``*``) and ``If-None-Match: *`` hold for the object ``name``, whose ETag is
    ``etag`` (None: there is no such object)."""
    if if_none_match and etag is not None:
        raise PreconditionFailed(f"{name[:100]} exists")
    if if_match is not None and (etag is None or if_match not in ("*", f'"{etag}"')):
        raise PreconditionFailed(f"{name[:100]} is not at ETag {if_match[:100]}")


def parse_all(
    kind: CollectionKind, objects: Sequence[tuple[str, bytes]], components: Sequence[str]
) -> list[ParsedObject]:
    """Each (name, data) checked as an object of ``kind`` that a collection holding
    ``components`` may keep, and no two with one UID; else ``kind.invalid``."""
    parsed = []
    for name, data in objects:
        try:
            parsed.append(kind.parse(data, components))
        except InvalidCalendarData as error:
            raise kind.invalid(error.precondition, f"{name[:100]}: {error}") from None
    if len({item.uid for item in parsed}) != len(parsed):
        raise kind.invalid("no-uid-conflict", "two objects with one UID")
    return parsed
