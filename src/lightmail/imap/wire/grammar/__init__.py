"""The IMAP command grammar (RFC 3501 section 9 and the extensions we offer).

``parse_command`` turns the complete raw bytes of one command (as the receiver
frames them: lines and literal data inline) into a typed command, or raises
``ParseError``. APPEND is not one command value: ``parse_append`` reads it
piece by piece as the receiver streams its messages (``grammar.append``).
``COMMANDS`` is the one table from a verb to its parse function, which lives
in the module of its RFC area: ``session`` (any state, Not Authenticated),
``mailbox`` (Authenticated), ``message``, ``fetch`` and ``search`` (Selected).
The shared productions are in ``lightmail.imap.wire.parser``.
"""

from __future__ import annotations

from collections.abc import Callable

from lightmail.imap.wire.commands import (
    CapabilityCommand,
    CheckCommand,
    CloseCommand,
    Command,
    CopyCommand,
    DeleteCommand,
    GetQuotaRootCommand,
    IdleCommand,
    LogoutCommand,
    MoveCommand,
    NamespaceCommand,
    NoopCommand,
    StartTlsCommand,
    SubscribeCommand,
    UnselectCommand,
    UnsubscribeCommand,
)
from lightmail.imap.wire.grammar import fetch, mailbox, message, search, session
from lightmail.imap.wire.grammar.append import AppendEvent, Position, append_events
from lightmail.imap.wire.parser import Handler, ParseError, Parser, Utf8

__all__ = ["COMMANDS", "AppendEvent", "Position", "parse_append", "parse_command"]


def _no_arguments(cls: Callable[[bytes], Command]) -> Handler:
    def parse(p: Parser, tag: bytes, uid: bool) -> Command:
        p.end()
        return cls(tag)

    return parse


COMMANDS: dict[bytes, Handler] = {
    b"CAPABILITY": _no_arguments(CapabilityCommand),
    b"NOOP": _no_arguments(NoopCommand),
    b"LOGOUT": _no_arguments(LogoutCommand),
    b"STARTTLS": _no_arguments(StartTlsCommand),
    b"AUTHENTICATE": session.authenticate,
    b"LOGIN": session.login,
    b"SELECT": mailbox.select(readonly=False),
    b"EXAMINE": mailbox.select(readonly=True),
    b"CREATE": mailbox.create,
    b"DELETE": mailbox.one_mailbox(DeleteCommand),
    b"RENAME": mailbox.rename,
    b"SUBSCRIBE": mailbox.one_mailbox(SubscribeCommand),
    b"UNSUBSCRIBE": mailbox.one_mailbox(UnsubscribeCommand),
    b"LIST": mailbox.list_,
    b"LSUB": mailbox.lsub,
    b"STATUS": mailbox.status,
    b"CHECK": _no_arguments(CheckCommand),
    b"CLOSE": _no_arguments(CloseCommand),
    b"UNSELECT": _no_arguments(UnselectCommand),
    b"EXPUNGE": message.expunge,
    b"SEARCH": search.search,
    b"SORT": search.sort,
    b"THREAD": search.thread,
    b"FETCH": fetch.fetch,
    b"STORE": message.store,
    b"COPY": message.copy_or_move(CopyCommand),
    b"MOVE": message.copy_or_move(MoveCommand),
    b"IDLE": _no_arguments(IdleCommand),
    b"ID": session.id_,
    b"NAMESPACE": _no_arguments(NamespaceCommand),
    b"ENABLE": session.enable,
    b"COMPRESS": session.compress,
    b"GETQUOTA": mailbox.getquota,
    b"GETQUOTAROOT": mailbox.one_mailbox(GetQuotaRootCommand),
}
"""Verb (upper case) to the function that parses what follows it."""
_UID_COMMANDS = frozenset(
    {b"COPY", b"FETCH", b"SEARCH", b"STORE", b"EXPUNGE", b"MOVE", b"SORT", b"THREAD"}
)


def _command_head(p: Parser) -> tuple[bytes, bytes, bool]:
    """``tag SP [UID SP] name``: returns (tag, upper-case name, uid)."""
    if p.at(b"\r\n"):
        raise ParseError("empty command line")
    tag = p.tag()
    p.sp()
    name = p.atom().upper()
    uid = name == b"UID"
    if uid:
        p.sp()
        name = p.atom().upper()
        if name not in _UID_COMMANDS:
            raise ParseError("command not allowed after UID")
    elif name not in COMMANDS and name != b"APPEND":
        raise ParseError("unknown command")
    return tag, name, uid


def parse_command(buf: bytes, max_depth: int, max_keys: int, *, utf8: Utf8 = Utf8.OFF) -> Command:
    """Parse one complete command; ``utf8``: what the session enabled (see ``Utf8``).
    Not APPEND: the receiver reads it with `parse_append`."""
    p = Parser(buf, max_depth, max_keys, utf8=utf8)
    tag, name, uid = _command_head(p)
    handler = COMMANDS.get(name)
    if handler is None:
        raise ParseError("APPEND without a message")
    return handler(p, tag, uid)


def parse_append(
    buf: bytes,
    max_depth: int,
    *,
    utf8: Utf8 = Utf8.OFF,
    resume: tuple[bytes, Position] | None = None,
) -> tuple[list[AppendEvent], Position | None] | None:
    """A piece of APPEND (`grammar.append.append_events`): from the start of a
    command (None if it is not an APPEND), or, with ``resume`` (tag, position),
    from where the last streamed literal left it.

    Raises ``ParseError``, or ``Incomplete`` when ``buf`` ends in a literal that
    is an argument (the mailbox, a URL): the receiver buffers its octets.
    """
    p = Parser(buf, max_depth, utf8=utf8)
    if resume is not None:
        return append_events(p, *resume)
    tag, name, _ = _command_head(p)
    if name != b"APPEND":
        return None
    p.sp()
    return append_events(p, tag, Position.MESSAGE, p.mailbox())
