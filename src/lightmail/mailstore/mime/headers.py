"""Header fields (RFC 5322 section 2.2) and the lexical pieces every field parser shares.

A header block is split into fields as "latin-1 text", one character per octet, so
that boundaries and RFC 2231 octets survive exactly; `as_text` turns a value into
real text: UTF-8, invalid octets becoming U+FFFD (NUL too).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

Fields = list[tuple[str, str]]

_FIELD_NAME = re.compile(r"[!-9;-~]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"?', re.DOTALL)
QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def header_fields(block: bytes) -> Fields:
    """Split a header block into (lower-case name, unfolded value) pairs.

    Values are latin-1 working text (see the module docstring).
    """
    fields: Fields = []
    name: str | None = None
    value: list[str] = []
    for raw in block.decode("latin-1").split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if not line:
            break
        if line[0] in " \t":
            if name is not None:
                value.append(line)  # unfolding: the CRLF before WSP goes (section 2.2.3)
            continue
        if name is not None:
            fields.append((name, "".join(value).strip(" \t")))
        name = None
        colon = line.find(":")
        field_name = line[:colon].rstrip(" \t")
        if colon > 0 and _FIELD_NAME.fullmatch(field_name):
            name = field_name.lower()
            value = [line[colon + 1 :]]
    if name is not None:
        fields.append((name, "".join(value).strip(" \t")))
    return fields


def first_field(fields: Fields, name: str) -> str | None:
    """The value of the first field called `name` (lower case), or None."""
    for field_name, value in fields:
        if field_name == name:
            return value
    return None


def as_text(value: str) -> str:
    """Latin-1 working text to real text: UTF-8, invalid octets and NUL as U+FFFD."""
    if not value.isascii():
        value = value.encode("latin-1").decode("utf-8", "replace")
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def as_ntext(value: str | None) -> str | None:
    return None if value is None else as_text(value)


def ascii_upper(value: str) -> str:
    """Upper-case a-z only: latin-1 working text must stay one octet per character."""
    return value.translate(_ASCII_UPPER)


def comment_end(text: str, pos: int) -> int:
    """Where the RFC 5322 comment opening at `pos` ends (nested, with quoted pairs)."""
    depth, n = 0, len(text)
    while pos < n:
        char = text[pos]
        if char == "\\":
            pos += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    return n


def skip_cfws(text: str, pos: int) -> int:
    """Skip white space and comments (RFC 5322 section 3.2.2)."""
    n = len(text)
    while pos < n:
        char = text[pos]
        if char in " \t\r\n":
            pos += 1
        elif char == "(":
            pos = comment_end(text, pos)
        else:
            break
    return pos


def quoted(text: str, pos: int) -> tuple[str, int]:
    """The content of the quoted-string at `pos`, quoting removed, and where it ends."""
    match = _QUOTED.match(text, pos)
    if match is None:  # pragma: no cover - the pattern matches any '"'
        return "", pos + 1
    return QUOTED_PAIR.sub(r"\1", match.group(1)), match.end()


def parse_date(value: str | None) -> datetime | None:
    """The Date field (RFC 5322 section 3.3) as an aware datetime; None if unparsable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value[:256])
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
