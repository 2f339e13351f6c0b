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
    """``STORE set [+-]FLAGS[.SILENT] flags``, a list or bare flags (section 6.4.6)."""
    p.sp()
    sequence_set = p.sequence_set()
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
    return StoreCommand(tag, uid, sequence_set, mode, item == b"FLAGS.SILENT", flags)


def copy_or_move(cls: type[CopyCommand] | type[MoveCommand]) -> Handler:
    """``verb set mailbox``: COPY (section 6.4.7) and MOVE (RFC 6851 section 3.1)."""

    def parse(p: Parser, tag: bytes, uid: bool) -> Command:
        sequence_set, mailbox = p.two(p.sequence_set, p.mailbox)
        return cls(tag, uid, sequence_set, mailbox)

    return parse
