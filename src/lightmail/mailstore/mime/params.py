"""Parameters of a Content-* field (RFC 2045 section 5.1) and RFC 2231 continuations.

Parameters follow Dovecot, which follows RFC 2231 without decoding into 8-bit:
continuations (``name*0``, ``name*1`` ...) are merged into one ``NAME``; if any segment
is extended (``name*0*``), the merged parameter is ``NAME*`` and its value stays
RFC 2231-encoded (``utf-8''%E2%82%AC.pdf``), so BODYSTRUCTURE stays 7-bit for
IMAP4rev1 clients, which decode RFC 2231 themselves. Segments with gaps in their
numbering are passed on unmerged. `param_text` returns the decoded text (RFC 2231
value, or RFC 2047 words in a plain value) for search and display.

Parameter names are upper-cased, as in RFC 3501's examples; values are kept as sent.
At most 200 parameters are kept per header field.
"""

from __future__ import annotations

import re
from typing import TypeAlias
from urllib.parse import unquote_to_bytes

from lightmail.mailstore.mime.headers import as_text, ascii_upper, quoted, skip_cfws
from lightmail.mailstore.mime.words import decode_octets, decode_words

Params: TypeAlias = tuple[tuple[str, str], ...]

MAX_PARAMS = 200
LOOSE_TOKEN = re.compile(r"[^\s;()\"=]+")
_LOOSE_VALUE = re.compile(r"[^\s;()\"]*")
_SECTION = re.compile(r"(.+?)\*([0-9]{1,3})")


def _raw_params(text: str, pos: int) -> list[tuple[str, str]]:
    """``*(";" parameter)`` (RFC 2045 section 5.1), leniently: garbage is skipped."""
    params: list[tuple[str, str]] = []
    n = len(text)
    while pos < n and len(params) < MAX_PARAMS:
        semicolon = text.find(";", pos)
        if semicolon < 0:
            break
        pos = skip_cfws(text, semicolon + 1)
        name = LOOSE_TOKEN.match(text, pos)
        if name is None:
            continue
        pos = skip_cfws(text, name.end())
        if pos >= n or text[pos] != "=":
            continue
        pos = skip_cfws(text, pos + 1)
        if pos < n and text[pos] == '"':
            value, pos = quoted(text, pos)
        else:
            loose = _LOOSE_VALUE.match(text, pos)
            value = "" if loose is None else loose.group()
            pos = pos + len(value)
        params.append((ascii_upper(name.group()), value))
    return params


def _merge_2231(raw: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merge RFC 2231 continuations as Dovecot does (see the module docstring).

    ``name*0``, ``name*1*`` ... become one ``NAME`` (or ``NAME*`` with the value
    still encoded if any segment is extended, plain segments having ``%`` escaped),
    in the place of the first segment. With gaps or duplicates in the numbering the
    segments are returned as they came.
    """
    sections: dict[str, list[tuple[int, bool, str, int]]] = {}
    for position, (name, value) in enumerate(raw):
        extended = name.endswith("*")
        match = _SECTION.fullmatch(name[:-1] if extended else name)
        if match is not None:
            entry = (int(match.group(2)), extended, value, position)
            sections.setdefault(match.group(1), []).append(entry)
    if not sections:
        return raw
    merged: dict[int, tuple[str, str]] = {}
    skipped: set[int] = set()
    for base, entries in sections.items():
        entries.sort()
        if [entry[0] for entry in entries] != list(range(len(entries))):
            continue
        any_extended = any(entry[1] for entry in entries)
        pieces: list[str] = []
        if any_extended and not entries[0][1]:
            pieces.append("''")
        for _index, extended, value, _position in entries:
            pieces.append(value.replace("%", "%25") if any_extended and not extended else value)
        merged[min(entry[3] for entry in entries)] = (
            base + "*" if any_extended else base,
            "".join(pieces),
        )
        skipped.update(entry[3] for entry in entries)
    out: list[tuple[str, str]] = []
    for position, pair in enumerate(raw):
        if position in merged:
            out.append(merged[position])
        elif position not in skipped:
            out.append(pair)
    return out


def parse_params(text: str, pos: int) -> list[tuple[str, str]]:
    """Parameters after `pos`, RFC 2231 merged, still in latin-1 working text."""
    return _merge_2231(_raw_params(text, pos))


def to_params(pairs: list[tuple[str, str]]) -> Params:
    """Working-text parameters as they are kept: real text (see `as_text`)."""
    return tuple((as_text(name), as_text(value)) for name, value in pairs)


def split_2231(value: str) -> tuple[str, str]:
    """``charset'language'%XX...`` (RFC 2231 section 4): the charset and the %-encoded
    octets; a value without the two quotes is all octets, in no charset."""
    parts = value.split("'", 2)
    return (parts[0] if len(parts) == 3 else ""), parts[-1]


def param_text(params: Params, name: str) -> str | None:
    """The decoded value of parameter `name`, or None.

    Prefers the RFC 2231 form (``NAME*``, decoded from its charset) over a plain
    ``NAME``, whose RFC 2047 encoded words, a common misuse, are decoded too.
    """
    wanted = name.upper()
    for key, value in params:
        if key == wanted + "*":
            charset, encoded = split_2231(value)
            return decode_octets(unquote_to_bytes(encoded), charset)
    for key, value in params:
        if key == wanted:
            return decode_words(value)
    return None
