"""FETCH data from the cached parse: ENVELOPE, BODYSTRUCTURE, BODY and section ranges.

Sans-I/O: everything here works on `lightmail.mailstore.mime` values (parsed once at
delivery) and on byte offsets; the session reads the blob. RFC 3501 section 6.4.5
(FETCH, section specifiers, partial fetches), section 7.4.2 (the FETCH response
items) and section 9 (``envelope``, ``address``, ``body`` and ``body-*`` grammar).

Choices, where the RFC leaves room:

- BODYSTRUCTURE always sends all four extension fields (md5, disposition, language,
  location; for a multipart: parameters, disposition, language, location), NIL where
  absent, as Dovecot and Cyrus do; BODY sends none of them.
- A body part that does not exist, or a ``HEADER``/``TEXT`` specifier on a part that
  is not MESSAGE/RFC822, is answered with an empty literal (`section_range` returns
  None), as Dovecot and Cyrus do, rather than NO.
- ``HEADER.FIELDS`` output keeps the kept fields' octets as stored (their own line
  endings) and always ends with a CRLF blank line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lightmail.imap.wire.responses import nstring, paren_list, string
from lightmail.imap.wire.types import BodySection, SectionText
from lightmail.mailstore.mime.params import Params
from lightmail.mailstore.mime.types import Address, BodyPart, Envelope

__all__ = [
    "SectionRange",
    "apply_partial",
    "body_structure_bytes",
    "envelope_bytes",
    "filter_header",
    "section_range",
]

_NIL = b"NIL"
_CRLF = b"\r\n"


# -- ENVELOPE ---------------------------------------------------------------------


def _nstr(value: str | None) -> bytes:
    return nstring(None if value is None else value.encode("utf-8"))


def _str(value: str) -> bytes:
    return string(value.encode("utf-8"))


def _address(address: Address) -> bytes:
    """``address`` = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")"."""
    return paren_list(
        (_nstr(address.name), _nstr(address.adl), _nstr(address.mailbox), _nstr(address.host))
    )


def _address_list(addresses: tuple[Address, ...] | None) -> bytes:
    """``env-from`` and friends: "(" 1*address ")" / nil (no SP between addresses)."""
    if not addresses:
        return _NIL
    return b"(" + b"".join(_address(address) for address in addresses) + b")"


def envelope_bytes(envelope: Envelope) -> bytes:
    """The ``envelope`` production (RFC 3501 sections 7.4.2 and 9)."""
    return paren_list(
        (
            _nstr(envelope.date),
            _nstr(envelope.subject),
            _address_list(envelope.from_),
            _address_list(envelope.sender),
            _address_list(envelope.reply_to),
            _address_list(envelope.to),
            _address_list(envelope.cc),
            _address_list(envelope.bcc),
            _nstr(envelope.in_reply_to),
            _nstr(envelope.message_id),
        )
    )


# -- BODYSTRUCTURE / BODY ---------------------------------------------------------

_NIL_ENVELOPE = Envelope(None, None, None, None, None, None, None, None, None, None)


def _params(params: Params) -> bytes:
    """``body-fld-param``: ("NAME" "value" ...) or NIL when there are none."""
    if not params:
        return _NIL
    return paren_list(_str(name) + b" " + _str(value) for name, value in params)


def _disposition(part: BodyPart) -> bytes:
    """``body-fld-dsp`` = "(" string SP body-fld-param ")" / nil."""
    disposition = part.disposition
    if disposition is None:
        return _NIL
    return b"(" + _str(disposition.type) + b" " + _params(disposition.params) + b")"


def _language(language: tuple[str, ...] | None) -> bytes:
    """``body-fld-lang`` = nstring / "(" string *(SP string) ")"."""
    if not language:
        return _NIL
    if len(language) == 1:
        return _str(language[0])
    return paren_list(_str(tag) for tag in language)


def _body_fields(part: BodyPart) -> bytes:
    """``body-fields`` = param SP id SP desc SP enc SP octets."""
    return b" ".join(
        (
            _params(part.params),
            _nstr(part.id),
            _nstr(part.description),
            _str(part.encoding),
            str(part.size).encode("ascii"),
        )
    )


def _encapsulated(part: BodyPart) -> tuple[Envelope, BodyPart]:
    """The envelope and body of a MESSAGE/RFC822 part, synthesised if missing.

    `MimeScanner` always gives both; this only guards against hand-made values, so
    that ``body-type-msg`` is always complete (the grammar has no NIL body).
    """
    message = part.message
    if message is None:
        message = BodyPart(
            type="TEXT",
            subtype="PLAIN",
            params=(("CHARSET", "US-ASCII"),),
            id=None,
            description=None,
            encoding="7BIT",
            lines=part.lines,
            md5=None,
            disposition=None,
            language=None,
            location=None,
            header_start=part.body_start,
            body_start=part.body_start,
            end=part.end,
        )
    return part.envelope or _NIL_ENVELOPE, message


def body_structure_bytes(part: BodyPart, *, extensible: bool) -> bytes:
    """``body`` (RFC 3501 section 9): BODYSTRUCTURE if `extensible`, else BODY.

    MULTIPART: the children with no SP between them, SP subtype, and for
    BODYSTRUCTURE ``body-ext-mpart``. MESSAGE/RFC822: ``body-type-msg`` (envelope,
    body, lines). TEXT/*: ``body-type-text`` (lines). Anything else:
    ``body-type-basic``. For BODYSTRUCTURE a single part gets ``body-ext-1part``.
    """
    if part.is_multipart and part.children:
        inner = b"".join(
            body_structure_bytes(child, extensible=extensible) for child in part.children
        )
        out = inner + b" " + _str(part.subtype)
        if extensible:
            out += b" " + _params(part.params) + b" " + _extension_tail(part)
        return b"(" + out + b")"

    out = _str(part.type) + b" " + _str(part.subtype) + b" " + _body_fields(part)
    if part.type == "MESSAGE" and part.subtype == "RFC822":
        envelope, message = _encapsulated(part)
        out += b" " + b" ".join(
            (
                envelope_bytes(envelope),
                body_structure_bytes(message, extensible=extensible),
                str(part.lines).encode("ascii"),
            )
        )
    elif part.type == "TEXT":
        out += b" " + str(part.lines).encode("ascii")
    if extensible:
        out += b" " + _nstr(part.md5) + b" " + _extension_tail(part)
    return b"(" + out + b")"


def _extension_tail(part: BodyPart) -> bytes:
    """``body-fld-dsp SP body-fld-lang SP body-fld-loc``: how both kinds of
    extension data end (``body-ext-1part``, ``body-ext-mpart``)."""
    return b" ".join((_disposition(part), _language(part.language), _nstr(part.location)))


# -- HEADER.FIELDS ----------------------------------------------------------------

_LINE = re.compile(rb"[^\n]*\n|[^\n]+")
_FIELD_NAME = re.compile(rb"([^:\s]+)[ \t]*:")
_NAME = re.compile(rb"[^:\s]+")


def filter_header(header: bytes, names: Sequence[bytes], *, exclude: bool) -> bytes:
    """HEADER.FIELDS (or, with `exclude`, HEADER.FIELDS.NOT) of a header block.

    Keeps (or drops) the fields whose name matches one of `names`, ASCII
    case-insensitively, each with its continuation lines, in their original order;
    the result ends with the blank line (RFC 3501 section 6.4.5: subsetting does not
    exclude the delimiting blank line), written as CRLF. Lines may end in CRLF or in
    a bare LF; the kept lines are copied as they are, and a last line without a line
    ending gets a CRLF. The block ends at its first empty line. Lines that are not a
    field (no colon) count as not matching any name.
    """
    wanted = frozenset(name.strip().lower() for name in names)
    if not exclude:
        return _kept_fields(header, wanted)
    out: list[bytes] = []
    keep = False
    for match in _LINE.finditer(header):
        line = match.group()
        if line in (b"\n", b"\r\n"):
            break
        if line[:1] not in (b" ", b"\t"):
            field = _FIELD_NAME.match(line)
            keep = field is None or field.group(1).lower() not in wanted
        if keep:
            out.append(line if line.endswith(b"\n") else line + _CRLF)
    out.append(_CRLF)
    return b"".join(out)


def _kept_fields(header: bytes, wanted: frozenset[bytes]) -> bytes:
    """HEADER.FIELDS by one regular expression: what FETCH of many messages' few
    fields (a client's message list) spends its time on."""
    fields = fields_named(wanted)
    if fields is None:
        return _CRLF
    out = [match.group() for match in fields.finditer(header, 0, header_end(header))]
    if out and not out[-1].endswith(b"\n"):
        out[-1] += _CRLF
    out.append(_CRLF)
    return b"".join(out)


def header_end(header: bytes) -> int:
    """Where a header block ends: at its first empty line (a bare LF or CRLF line)."""
    if header[:1] == b"\n" or header[:2] == b"\r\n":
        return 0
    ends = [i + 1 for i in (header.find(b"\n\n"), header.find(b"\n\r\n")) if i >= 0]
    return min(ends, default=len(header))


@functools.lru_cache(maxsize=256)
def fields_named(wanted: frozenset[bytes]) -> re.Pattern[bytes] | None:
    """A field of one of these names (ASCII case-insensitively), from its line start
    through its continuation lines; None when no name can be a field name
    (``[^:\\s]+``). Search it up to :func:`header_end`."""
    names = sorted(name for name in wanted if _NAME.fullmatch(name))
    if not names:
        return None
    either = b"|".join(re.escape(name) for name in names)
    return re.compile(
        rb"^(?:" + either + rb")[ \t]*:[^\n]*(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*",
        re.IGNORECASE | re.MULTILINE,
    )


# -- Sections ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SectionRange:
    """Where ``BODY[section]`` lies in the raw message: octets ``[start, end)``.

    When `fields` is set (HEADER.FIELDS[.NOT]), ``[start, end)`` is a header block:
    read it and pass it to `filter_header` with `fields` and `exclude`; a partial
    fetch then applies to the filtered text (RFC 3501 section 6.4.5).
    """

    start: int
    end: int
    fields: tuple[bytes, ...] | None = None
    exclude: bool = False


def section_range(body: BodyPart, section: BodySection) -> SectionRange | None:
    """Map ``BODY[section]`` (RFC 3501 section 6.4.5) to offsets of the raw message.

    `body` is the message's root part. ``[]`` is the whole message; ``HEADER``,
    ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT`` and ``TEXT`` refer to the root message
    or, after a part number, to the message encapsulated in that MESSAGE/RFC822
    part; ``n.MIME`` is the part's own MIME header; a bare part number is the
    part's body. None when the part does not exist or the specifier does not apply
    to it (the caller answers with an empty string).
    """
    if not section.part:
        return root_section_range(body.body_start, body.end, section)
    text = section.text
    part = body.find(section.part)
    if part is None:
        return None
    if text is None:
        return SectionRange(part.body_start, part.end)
    if text is SectionText.MIME:
        return SectionRange(part.header_start, part.body_start)
    message = part.message
    if message is None:
        return None
    return _message_range(message.header_start, message.body_start, message.end, section)


def root_section_range(body_start: int, end: int, section: BodySection) -> SectionRange | None:
    """:func:`section_range` of a section of the message itself (no part number),
    from where its body starts and where it ends: no body structure to decode."""
    if section.text is None:
        return SectionRange(0, end)
    if section.text is SectionText.MIME:
        return None
    return _message_range(0, body_start, end, section)


def _message_range(
    header_start: int, body_start: int, end: int, section: BodySection
) -> SectionRange:
    """HEADER, HEADER.FIELDS[.NOT] or TEXT of a message (the root, or one in a
    MESSAGE/RFC822 part) whose header starts at ``header_start``."""
    text = section.text
    if text is SectionText.TEXT:
        return SectionRange(body_start, end)
    if text is SectionText.HEADER:
        return SectionRange(header_start, body_start)
    return SectionRange(
        header_start,
        body_start,
        fields=tuple(section.fields),
        exclude=text is SectionText.HEADER_FIELDS_NOT,
    )


def apply_partial(length: int, partial: tuple[int, int] | None) -> tuple[int, int]:
    """``<origin.count>`` of a section `length` octets long: (offset, count), clamped.

    Without a partial the whole section. An origin past the end gives
    ``(length, 0)``: an empty string (RFC 3501 section 6.4.5).
    """
    length = max(0, length)
    if partial is None:
        return 0, length
    origin, count = partial
    offset = min(max(0, origin), length)
    return offset, max(0, min(count, length - offset))
