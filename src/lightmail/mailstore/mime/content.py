"""The Content-* fields of one header block (RFC 2045, RFC 2046, RFC 2183), defaulted.

Media types, subtypes, the transfer encoding and the disposition type are
upper-cased, as in RFC 3501's examples. TEXT/PLAIN without a charset gets
``("CHARSET", "US-ASCII")`` (RFC 2046 section 4.1.2); so does a missing or
syntactically invalid Content-Type, which means TEXT/PLAIN (RFC 2045 section 5.2),
or MESSAGE/RFC822 inside MULTIPART/DIGEST (RFC 2046 section 5.1.5) when missing.
A base64 or quoted-printable MESSAGE/RFC822, which RFC 2046 section 5.2.1 forbids,
is not looked into. Boundaries are up to 998 octets (RFC 5322 line length).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from lightmail.mailstore.mime.headers import Fields, as_ntext, as_text, first_field, skip_cfws
from lightmail.mailstore.mime.params import (
    LOOSE_TOKEN,
    MAX_PARAMS,
    parse_params,
    split_2231,
    to_params,
)
from lightmail.mailstore.mime.types import BodyPart, Disposition

MAX_BOUNDARY = 998
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")
_PLAIN_ENCODINGS = frozenset({"7BIT", "8BIT", "BINARY"})


class Kind(enum.Enum):
    """What the scanner finds in a part's body."""

    LEAF = enum.auto()
    MULTIPART = enum.auto()
    MESSAGE = enum.auto()


@dataclass(frozen=True, slots=True)
class MimeInfo:
    """What one header block says of its part (RFC 2045, RFC 2183).

    ``part`` holds the Content-* fields as BODYSTRUCTURE shows them; its extent
    (``lines``, the offsets, children, an encapsulated message) is empty: the
    scanner fills it in with :func:`dataclasses.replace` once the body is read.
    """

    part: BodyPart
    boundary: bytes | None
    kind: Kind


def _content_type(value: str) -> tuple[str, str, list[tuple[str, str]]] | None:
    """``type "/" subtype *(";" parameter)`` (RFC 2045 section 5.1); None if invalid."""
    pos = skip_cfws(value, 0)
    major = _TOKEN.match(value, pos)
    if major is None:
        return None
    pos = skip_cfws(value, major.end())
    if pos >= len(value) or value[pos] != "/":
        return None
    pos = skip_cfws(value, pos + 1)
    minor = _TOKEN.match(value, pos)
    if minor is None:
        return None
    return major.group().upper(), minor.group().upper(), parse_params(value, minor.end())


def _leading_token(value: str) -> re.Match[str] | None:
    """The token a field's value starts with, after CFWS (the encoding, the
    disposition type)."""
    return LOOSE_TOKEN.match(value, skip_cfws(value, 0))


def _boundary(pairs: list[tuple[str, str]]) -> bytes | None:
    """The boundary parameter as the octets that appear in the body (RFC 2046 5.1.1)."""
    for name, value in pairs:
        if name == "BOUNDARY*":
            raw = unquote_to_bytes(split_2231(value)[1].encode("latin-1"))
            break
        if name == "BOUNDARY":
            raw = value.encode("latin-1")
            break
    else:
        return None
    return raw if 0 < len(raw) <= MAX_BOUNDARY else None


def mime_info(fields: Fields, *, in_digest: bool) -> MimeInfo:
    """The Content-* fields, defaulted (RFC 2045 section 5.2, RFC 2046 section 5.1.5)."""
    content_type = first_field(fields, "content-type")
    parsed = None if content_type is None else _content_type(content_type)
    if parsed is not None:
        major, minor, pairs = parsed
        if (major, minor) == ("TEXT", "PLAIN") and all(name != "CHARSET" for name, _ in pairs):
            pairs = [*pairs, ("CHARSET", "US-ASCII")]
    elif content_type is None and in_digest:
        major, minor, pairs = "MESSAGE", "RFC822", []
    else:
        major, minor, pairs = "TEXT", "PLAIN", [("CHARSET", "US-ASCII")]

    encoding_value = first_field(fields, "content-transfer-encoding")
    encoding = "7BIT"
    if encoding_value is not None:
        token = _leading_token(encoding_value)
        if token is not None:
            encoding = as_text(token.group()).upper()

    kind = Kind.LEAF
    boundary = None
    if major == "MULTIPART":
        kind = Kind.MULTIPART
        boundary = _boundary(pairs)
    elif (major, minor) == ("MESSAGE", "RFC822") and encoding in _PLAIN_ENCODINGS:
        kind = Kind.MESSAGE

    disposition = None
    disposition_value = first_field(fields, "content-disposition")
    if disposition_value is not None:
        token = _leading_token(disposition_value)
        if token is not None:
            disposition = Disposition(
                as_text(token.group()).upper(),
                to_params(parse_params(disposition_value, token.end())),
            )

    language = None
    language_value = first_field(fields, "content-language")
    if language_value is not None:
        tags = tuple(as_text(tag.strip(" \t")) for tag in language_value.split(",")[:MAX_PARAMS])
        language = tuple(tag for tag in tags if tag) or None

    part = BodyPart(
        type=as_text(major),
        subtype=as_text(minor),
        params=to_params(pairs),
        id=as_ntext(first_field(fields, "content-id")),
        description=as_ntext(first_field(fields, "content-description")),
        encoding=encoding,
        lines=0,
        md5=as_ntext(first_field(fields, "content-md5")),
        disposition=disposition,
        language=language,
        location=as_ntext(first_field(fields, "content-location")),
        header_start=0,
        body_start=0,
        end=0,
    )
    return MimeInfo(part, boundary, kind)
