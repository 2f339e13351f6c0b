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

__all__ = ["append", "list_", "lsub", "one_mailbox", "rename", "select", "status"]

_STATUS_ITEMS = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"})


def one_mailbox(cls: Callable[[bytes, bytes], Command]) -> Handler:
    def parse(p: Parser, tag: bytes, uid: bool) -> Command:
        p.sp()
        mailbox = p.mailbox()
        p.end()
        return cls(tag, mailbox)

    return parse


def select(readonly: bool) -> Handler:
    def parse(p: Parser, tag: bytes, uid: bool) -> Command:
        p.sp()
        mailbox = p.mailbox()
        p.end()
        return SelectCommand(tag, mailbox, readonly=readonly)

    return parse


def rename(p: Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    old = p.mailbox()
    p.sp()
    new = p.mailbox()
    p.end()
    return RenameCommand(tag, old, new)


def _option_list(p: Parser) -> tuple[str, ...]:
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
    p.sp()
    reference = p.mailbox()
    p.sp()
    pattern = p.list_mailbox()
    p.end()
    return LsubCommand(tag, reference, pattern)


def status(p: Parser, tag: bytes, uid: bool) -> Command:
    p.sp()
    mailbox = p.mailbox()
    p.sp()
    items = p.parenthesized(lambda: p.word("a STATUS item").decode("ascii"))
    p.end()
    if not _STATUS_ITEMS.issuperset(items):
        raise ParseError("unknown STATUS item")
    return StatusCommand(tag, mailbox, tuple(items))


def append(p: Parser, tag: bytes, uid: bool) -> AppendCommand:
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
