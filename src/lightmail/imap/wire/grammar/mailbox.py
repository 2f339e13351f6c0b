"""Mailbox commands of the Authenticated state (RFC 3501 section 6.3).

SELECT, EXAMINE, CREATE (with RFC 6154's USE parameter), DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE, LIST (with RFC 5258's selection and return options,
RFC 5819's STATUS and RFC 6154's SPECIAL-USE), LSUB, STATUS (with RFC 8438's
SIZE, RFC 9208's DELETED and DELETED-STORAGE, RFC 7889's APPENDLIMIT), and RFC
9208's GETQUOTA and GETQUOTAROOT. APPEND has a module of its own (``append``).
"""

from __future__ import annotations

from collections.abc import Callable

from lightmail.imap.wire.commands import (
    Command,
    CreateCommand,
    GetQuotaCommand,
    ListCommand,
    LsubCommand,
    RenameCommand,
    SelectCommand,
    StatusCommand,
)
from lightmail.imap.wire.parser import Handler, ParseError, Parser
from lightmail.imap.wire.types import QresyncParameter

__all__ = [
    "create",
    "getquota",
    "list_",
    "lsub",
    "one_mailbox",
    "rename",
    "select",
    "status",
]

# RFC 3501, RFC 8438 (SIZE), RFC 9208 (DELETED, DELETED-STORAGE), RFC 7889 (APPENDLIMIT),
# RFC 7162 (HIGHESTMODSEQ), RFC 8474 (MAILBOXID).
_STATUS_ITEMS = frozenset(
    {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE"}
    | {"DELETED", "DELETED-STORAGE", "APPENDLIMIT", "HIGHESTMODSEQ", "MAILBOXID"}
)
# RFC 5258 section 6 (list-select-base-opt, -independent-opt, -mod-opt) and RFC 6154.
_SELECT_BASE = frozenset({"SUBSCRIBED"})
_SELECT_OPTIONS = _SELECT_BASE | {"REMOTE", "SPECIAL-USE", "RECURSIVEMATCH"}
_RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"})


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


def _options(p: Parser, option: Callable[[str], None]) -> None:
    """``"(" [option *(SP option)] ")"``: each option's upper-cased atom goes to ``option``,
    which reads the option's value, if it has one."""
    p.expect(b"(", '"("')
    if not p.at(b")"):
        option(p.atom().upper().decode("ascii"))
        while p.at(b" "):
            p.sp()
            option(p.atom().upper().decode("ascii"))
    p.expect(b")", '")"')


def _status_items(p: Parser) -> tuple[str, ...]:
    """``"(" status-att *(SP status-att) ")"``, upper-cased, each once, in the order sent."""
    items = p.parenthesized(lambda: p.atom().upper().decode("ascii"))
    if not _STATUS_ITEMS.issuperset(items):
        raise ParseError("unknown STATUS item")
    return tuple(dict.fromkeys(items))


def list_(p: Parser, tag: bytes, uid: bool) -> Command:
    """LIST (section 6.3.8) with RFC 5258's selection options, patterns and return options.

    An option sent twice counts once; an unknown option, or RECURSIVEMATCH
    without SUBSCRIBED, is BAD (RFC 5258 section 3).
    """
    p.sp()
    extended = False
    select_options: set[str] = set()
    if p.at(b"("):  # list-select-opts
        extended = True
        _options(p, select_options.add)
        p.sp()
        if not _SELECT_OPTIONS.issuperset(select_options):
            raise ParseError("unknown LIST selection option")
        if "RECURSIVEMATCH" in select_options and not select_options & _SELECT_BASE:
            raise ParseError("RECURSIVEMATCH needs another selection option")
    reference = p.mailbox()
    p.sp()
    if p.at(b"("):  # patterns
        extended = True
        patterns = tuple(p.parenthesized(p.list_mailbox))
    else:
        patterns = (p.list_mailbox(),)
    return_options: set[str] = set()
    status_items: tuple[str, ...] = ()
    if p.at(b" "):  # list-return-opts
        extended = True
        p.sp()
        if p.word('"RETURN"') != b"RETURN":
            raise ParseError('expected "RETURN"')
        p.sp()

        def return_option(name: str) -> None:
            nonlocal status_items
            if name not in _RETURN_OPTIONS:
                raise ParseError("unknown LIST return option")
            if name == "STATUS":  # RFC 5819: STATUS SP "(" status-att *(SP status-att) ")"
                p.sp()
                status_items = tuple(dict.fromkeys((*status_items, *_status_items(p))))
            return_options.add(name)

        _options(p, return_option)
    p.end()
    return ListCommand(
        tag,
        reference,
        patterns,
        frozenset(select_options),
        frozenset(return_options),
        status_items,
        extended,
    )


def lsub(p: Parser, tag: bytes, uid: bool) -> Command:
    """``LSUB reference pattern`` (section 6.3.9)."""
    reference, pattern = p.two(p.mailbox, p.list_mailbox)
    return LsubCommand(tag, reference, pattern)


def status(p: Parser, tag: bytes, uid: bool) -> Command:
    """``STATUS mailbox (item ...)`` (section 6.3.10)."""
    p.sp()
    mailbox = p.mailbox()
    p.sp()
    items = _status_items(p)
    p.end()
    return StatusCommand(tag, mailbox, items)


def create(p: Parser, tag: bytes, uid: bool) -> Command:
    """``CREATE mailbox [SP "(" create-param *(SP create-param) ")"]`` (section 6.3.3,
    RFC 4466 section 2.2): the one parameter known is RFC 6154's ``USE (flag ...)``;
    any other is BAD."""
    p.sp()
    mailbox = p.mailbox()
    use: tuple[bytes, ...] = ()
    if p.at(b" "):
        p.sp()
        if p.at(b"()"):
            raise ParseError("expected a CREATE parameter")

        def parameter(name: str) -> None:
            nonlocal use
            if name != "USE":
                raise ParseError("unknown CREATE parameter")
            p.sp()
            use = p.flag_list()

        _options(p, parameter)
    p.end()
    return CreateCommand(tag, mailbox, use)


def getquota(p: Parser, tag: bytes, uid: bool) -> Command:
    """``GETQUOTA quota-root-name`` (RFC 9208 section 4.1.1)."""
    p.sp()
    root = p.astring()
    p.end()
    return GetQuotaCommand(tag, root)
