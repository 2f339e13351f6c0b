"""FETCH (RFC 3501 section 6.4.5): the attributes, macros and body sections, RFC
3516's BINARY sections, and the modifiers of RFC 7162 (CHANGEDSINCE, VANISHED)
and RFC 9394 (PARTIAL) in RFC 4466's syntax."""

from __future__ import annotations

from lightmail.imap.wire.commands import Command, FetchCommand
from lightmail.imap.wire.parser import DIGITS, MAX_NUMBER64, NAME_CHARS, ParseError, Parser
from lightmail.imap.wire.types import (
    BinarySection,
    BodySection,
    FetchAttribute,
    FetchItem,
    PartialRange,
    SectionText,
)

__all__ = ["fetch", "section_spec"]

_FETCH_MACROS: dict[bytes, tuple[FetchAttribute, ...]] = {
    b"FAST": (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE),
    b"ALL": (FetchItem.FLAGS, FetchItem.INTERNALDATE, FetchItem.RFC822_SIZE, FetchItem.ENVELOPE),
    b"FULL": (
        FetchItem.FLAGS,
        FetchItem.INTERNALDATE,
        FetchItem.RFC822_SIZE,
        FetchItem.ENVELOPE,
        FetchItem.BODY,
    ),
}
_FETCH_ITEMS = {item.value.encode(): item for item in FetchItem}
_SECTION_TEXTS = {t.value.encode(): t for t in SectionText}
_DIGIT_BYTES = frozenset(bytes([c]) for c in DIGITS)
_BINARY_ITEMS = frozenset({b"BINARY", b"BINARY.PEEK", b"BINARY.SIZE"})


def fetch(p: Parser, tag: bytes, uid: bool) -> Command:
    """``FETCH set attributes [modifiers]``: a macro, one attribute or a parenthesised
    list, then RFC 4466's ``fetch-modifiers``."""
    p.sp()
    sequence_set = p.sequence_set()
    p.sp()
    attributes = _fetch_attributes(p)
    changedsince: int | None = None
    vanished = False
    partial: PartialRange | None = None
    if p.at(b" "):
        p.sp()
        for name, value in p.parenthesized(lambda: _fetch_modifier(p)):
            if name == b"VANISHED":
                if vanished or not uid:
                    raise ParseError("VANISHED is allowed once, with UID FETCH only")
                vanished = True
            elif isinstance(value, PartialRange):
                if partial is not None or not uid:
                    raise ParseError("PARTIAL is allowed once, with UID FETCH only")
                partial = value
            elif changedsince is not None:
                raise ParseError("CHANGEDSINCE given twice")
            else:
                changedsince = value
        if vanished and changedsince is None:
            raise ParseError("VANISHED needs CHANGEDSINCE")
    p.end()
    return FetchCommand(tag, uid, sequence_set, attributes, changedsince, vanished, partial)


def _fetch_modifier(p: Parser) -> tuple[bytes, int | PartialRange]:
    """``CHANGEDSINCE mod-sequence-value``, ``VANISHED`` (RFC 7162 sections 3.1.4.1
    and 3.2.6) or ``PARTIAL partial-range`` (RFC 9394 section 3.3)."""
    name = p.word("a FETCH modifier")
    if name == b"VANISHED":
        return name, 0
    if name not in (b"CHANGEDSINCE", b"PARTIAL"):
        raise ParseError("unknown FETCH modifier")
    p.sp()
    return name, p.partial_range() if name == b"PARTIAL" else p.mod_sequence()


def _fetch_attributes(p: Parser) -> tuple[FetchAttribute, ...]:
    if p.at(b"("):
        return tuple(p.parenthesized(lambda: _fetch_attribute(p)))
    start = p.pos
    macro = _FETCH_MACROS.get(p.take(NAME_CHARS).upper())
    if macro is not None and not p.at(b"["):
        return macro
    p.pos = start
    return (_fetch_attribute(p),)


def _fetch_attribute(p: Parser) -> FetchAttribute:
    name = p.word("a FETCH attribute")
    if name in (b"BODY", b"BODY.PEEK") and p.at(b"["):
        return _body_section(p, peek=name == b"BODY.PEEK")
    if name in _BINARY_ITEMS:
        return _binary_section(p, name)
    item = _FETCH_ITEMS.get(name)
    if item is None:
        raise ParseError("unknown FETCH attribute")
    return item


def _body_section(p: Parser, *, peek: bool) -> BodySection:
    p.expect(b"[", '"["')
    part: list[int] = []
    text: SectionText | None = None
    fields: tuple[bytes, ...] = ()
    if p.peek() in DIGITS:
        part.append(p.nz_number())
        while p.at(b".") and p.buf[p.pos + 1 : p.pos + 2] in _DIGIT_BYTES:
            p.pos += 1
            part.append(p.nz_number())
        if p.at(b"."):
            p.pos += 1
            text = _section_text(p, allow_mime=True)
    elif not p.at(b"]"):
        text = _section_text(p, allow_mime=False)
    if text in (SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT):
        p.sp()
        fields = _header_list(p)
    p.expect(b"]", '"]"')
    return BodySection(peek=peek, part=tuple(part), text=text, fields=fields, partial=_partial(p))


def section_spec(text: bytes) -> BodySection:
    """``section-spec`` as text alone (``1.2.MIME``, ``HEADER.FIELDS (FROM)``,
    empty for the whole message), as an IMAP URL's ``;SECTION=`` carries it (RFC
    5092 section 6); a ``BODY.PEEK`` section. Raises ``ParseError``."""
    p = Parser(b"[" + text + b"]", max_depth=1)
    section = _body_section(p, peek=True)
    if p.pos != len(p.buf):
        raise ParseError("invalid section")
    return section


def _binary_section(p: Parser, name: bytes) -> BinarySection:
    """``"BINARY" [".PEEK"] section-binary [partial]`` or ``"BINARY.SIZE"
    section-binary`` (RFC 3516 section 7): ``section-binary = "[" [section-part]
    "]"``, part numbers only (no HEADER, TEXT or MIME)."""
    p.expect(b"[", '"["')
    part: list[int] = []
    if not p.at(b"]"):
        part.append(p.nz_number())
        while p.at(b"."):
            p.pos += 1
            part.append(p.nz_number())
    p.expect(b"]", '"]"')
    if name == b"BINARY.SIZE":
        return BinarySection(part=tuple(part), size=True)
    return BinarySection(part=tuple(part), peek=name == b"BINARY.PEEK", partial=_partial(p))


def _partial(p: Parser) -> tuple[int, int] | None:
    """``partial = "<" number64 "." nz-number64 ">"`` (RFC 9051 section 9), if there
    is one."""
    if not p.at(b"<"):
        return None
    p.pos += 1
    origin = p.number(MAX_NUMBER64)
    p.expect(b".", '"."')
    count = p.nz_number(MAX_NUMBER64)
    p.expect(b">", '">"')
    return origin, count


def _section_text(p: Parser, *, allow_mime: bool) -> SectionText:
    text = _SECTION_TEXTS.get(p.word("a section specifier"))
    if text is None or (text is SectionText.MIME and not allow_mime):
        raise ParseError("invalid section specifier")
    return text


def _header_list(p: Parser) -> tuple[bytes, ...]:
    return tuple(p.parenthesized(p.astring))
