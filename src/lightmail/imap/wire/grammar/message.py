"""Message commands of the Selected state (RFC 3501 section 6.4).

EXPUNGE and UID EXPUNGE (RFC 4315), STORE, COPY and MOVE (RFC 6851). FETCH and
SEARCH have modules of their own; CHECK, CLOSE and UNSELECT take no arguments.
"""

from __future__ import annotations

from lightmail.imap.wire.commands import (
    Command,
    CopyCommand,
    ExpungeCommand,
    MoveCommand,
    StoreCommand,
    StoreMode,
    UidExpungeCommand,
)
from lightmail.imap.wire.parser import Handler, ParseError, Parser

__all__ = ["copy_or_move", "expunge", "store"]


def expunge(p: Parser, tag: bytes, uid: bool) -> Command:
    """EXPUNGE (section 6.4.3), or UID EXPUNGE with a sequence set (RFC 4315 section 2.1)."""
    if not uid:
        p.end()
        return ExpungeCommand(tag)
    p.sp()
    sequence_set = p.sequence_set()
    p.end()
    return UidExpungeCommand(tag, sequence_set)


def store(p: Parser, tag: bytes, uid: bool) -> Command:
    """``STORE set [modifiers] [+-]FLAGS[.SILENT] flags``, a list or bare flags
    (section 6.4.6); the one modifier is RFC 7162's ``UNCHANGEDSINCE``, in RFC
    4466's ``store-modifiers`` syntax."""
    p.sp()
    sequence_set = p.sequence_set()
    p.sp()
    unchangedsince: int | None = None
    if p.at(b"("):
        modifiers = p.parenthesized(lambda: _store_modifier(p))
        if len(modifiers) > 1:
            raise ParseError("UNCHANGEDSINCE given twice")
        unchangedsince = modifiers[0]
        p.sp()
    mode: StoreMode = "replace"
    if p.at(b"+"):
        mode = "add"
        p.pos += 1
    elif p.at(b"-"):
        mode = "remove"
        p.pos += 1
    item = p.word('"FLAGS"')
    if item not in (b"FLAGS", b"FLAGS.SILENT"):
        raise ParseError('expected "FLAGS" or "FLAGS.SILENT"')
    p.sp()
    if p.at(b"("):
        flags = p.flag_list()
    else:
        flag_items = [p.flag()]
        while p.at(b" "):
            p.sp()
            flag_items.append(p.flag())
        flags = tuple(flag_items)
    p.end()
    silent = item == b"FLAGS.SILENT"
    return StoreCommand(tag, uid, sequence_set, mode, silent, flags, unchangedsince)


def _store_modifier(p: Parser) -> int:
    """``UNCHANGEDSINCE mod-sequence-valzer`` (RFC 7162 section 3.1.3)."""
    if p.word("a STORE modifier") != b"UNCHANGEDSINCE":
        raise ParseError("unknown STORE modifier")
    p.sp()
    return p.mod_sequence(zero=True)


def copy_or_move(cls: type[CopyCommand] | type[MoveCommand]) -> Handler:
    """``verb set mailbox``: COPY (section 6.4.7) and MOVE (RFC 6851 section 3.1)."""

    def parse(p: Parser, tag: bytes, uid: bool) -> Command:
        sequence_set, mailbox = p.two(p.sequence_set, p.mailbox)
        return cls(tag, uid, sequence_set, mailbox)

    return parse
