"""Mailbox commands of the Authenticated state (RFC 3501 section 6.3).

SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST (with
RFC 5258's selection and return options), LSUB, STATUS and APPEND's head.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from lightmail.imap.wire.commands import (
    AppendCommand,
    Command,
    ListCommand,
    LsubCommand,
    RenameCommand,
    SelectCommand,
    StatusCommand,
)
from lightmail.imap.wire.parser import Handler, ParseError, Parser
from lightmail.imap.wire.types import QresyncParameter

__all__ = ["append", "list_", "lsub", "one_mailbox", "rename", "select", "status"]

_STATUS_ITEMS = frozenset(
    {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ"}
)


def one_mailbox(cls: Callable[[bytes, bytes], Command]) -> Handler:
    """``verb SP mailbox``: CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE (6.3.3, 6.3.4, 6.3.6, 6.3.7)."""

    def parse(p: Parser, tag: bytes, uid: bool) -> Command:
        p.sp()
        mailbox = p.mailbox()
        p.end()
        return cls(tag, mailbox)

    return parse


def select(readonly: bool) -> Handler:
    """SELECT, or EXAMINE when ``readonly`` (sections 6.3.1 and 6.3.2), with the
    ``select-params`` of RFC 4466 section 2.1 that RFC 7162 defines: CONDSTORE
    (section 3.1.8) and QRESYNC (section 3.2.5), each at most once."""

    def parse(p: Parser, tag: bytes, uid: bool) -> Command:
        p.sp()
        mailbox = p.mailbox()
        condstore = False
        qresync: QresyncParameter | None = None
        if p.at(b" "):
            p.sp()
            for param in p.parenthesized(lambda: _select_param(p)):
                if isinstance(param, QresyncParameter):
                    if qresync is not None:
                        raise ParseError("QRESYNC given twice")
                    qresync = param
                elif condstore:
                    raise ParseError("CONDSTORE given twice")
                else:
                    condstore = True
        p.end()
        return SelectCommand(tag, mailbox, readonly, condstore, qresync)

    return parse


def _select_param(p: Parser) -> QresyncParameter | None:
    """One ``select-param``: CONDSTORE (None) or QRESYNC's parameter."""
    name = p.word("a SELECT parameter")
    if name == b"CONDSTORE":
        return None
    if name != b"QRESYNC":
        raise ParseError("unknown SELECT parameter")
    p.sp()
    p.expect(b"(", '"("')
    uidvalidity = p.nz_number()
    p.sp()
    modseq = p.mod_sequence()
    known_uids = None
    seq_match = None
    if p.at(b" ") and not p.at(b" ("):
        p.sp()
        known_uids = p.known_set()
    if p.at(b" "):
        p.sp()
        p.expect(b"(", '"("')
        known_seqs = p.known_set()
        p.sp()
        seq_match = (known_seqs, p.known_set())
        p.expect(b")", '")"')
    p.expect(b")", '")"')
    return QresyncParameter(uidvalidity, modseq, known_uids, seq_match)


def rename(p: Parser, tag: bytes, uid: bool) -> Command:
    """``RENAME existing new`` (section 6.3.5)."""
    old, new = p.two(p.mailbox, p.mailbox)
    return RenameCommand(tag, old, new)


def _option_list(p: Parser) -> tuple[str, ...]:
    """A parenthesised list of zero or more option atoms, upper-cased (RFC 5258)."""
    p.expect(b"(", '"("')
    options: list[str] = []
    if not p.at(b")"):
        options.append(p.atom().upper().decode("ascii"))
        while p.at(b" "):
            p.sp()
            options.append(p.atom().upper().decode("ascii"))
    p.expect(b")", '")"')
    return tuple(options)


def list_(p: Parser, tag: bytes, uid: bool) -> Command:
    """LIST (section 6.3.8) with RFC 5258's selection and return options."""
    p.sp()
    select_options: tuple[str, ...] = ()
    if p.at(b"("):  # RFC 5258 list-select-opts
        select_options = _option_list(p)
        p.sp()
    reference = p.mailbox()
    p.sp()
    pattern = p.list_mailbox()
    return_options: tuple[str, ...] = ()
    if p.at(b" "):  # RFC 5258 list-return-opts
        p.sp()
        if p.word('"RETURN"') != b"RETURN":
            raise ParseError('expected "RETURN"')
        p.sp()
        return_options = _option_list(p)
    p.end()
    return ListCommand(tag, reference, pattern, select_options, return_options)


def lsub(p: Parser, tag: bytes, uid: bool) -> Command:
    """``LSUB reference pattern`` (section 6.3.9)."""
    reference, pattern = p.two(p.mailbox, p.list_mailbox)
    return LsubCommand(tag, reference, pattern)


def status(p: Parser, tag: bytes, uid: bool) -> Command:
    """``STATUS mailbox (item ...)`` (section 6.3.10)."""
    p.sp()
    mailbox = p.mailbox()
    p.sp()
    items = p.parenthesized(lambda: p.word("a STATUS item").decode("ascii"))
    p.end()
    if not _STATUS_ITEMS.issuperset(items):
        raise ParseError("unknown STATUS item")
    return StatusCommand(tag, mailbox, tuple(items))


def append(p: Parser, tag: bytes, uid: bool) -> AppendCommand:
    """APPEND up to its message literal's head (section 6.3.11); the message is streamed."""
    p.sp()
    mailbox = p.mailbox()
    p.sp()
    flags: tuple[bytes, ...] = ()
    date_time: datetime.datetime | None = None
    if p.at(b"("):
        flags = p.flag_list()
        p.sp()
    if p.at(b'"'):
        date_time = p.date_time()
        p.sp()
    size, synchronizing = p.literal_head()
    if p.pos != len(p.buf):  # the framer stops right after the message's literal head
        raise ParseError("unexpected data after the APPEND literal")
    return AppendCommand(tag, mailbox, flags, date_time, size, synchronizing)
