"""One typed value per IMAP command, as produced by the receiver.

Each is a frozen, slotted dataclass whose first field is the client's ``tag``.
Mailbox names are the raw bytes sent (modified UTF-7, see ``mutf7``), except
that every case variant of ``INBOX`` arrives as ``b"INBOX"`` (RFC 3501
section 9, ``mailbox``). Keywords of the protocol (mechanisms, STATUS items,
capabilities, charsets) are upper-case ``str``.

Grouped by the state that allows them (RFC 3501 section 6); the receiver
accepts every command in every state, the session decides.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from lightmail.imap.wire.types import (
    FetchAttribute,
    PartialRange,
    QresyncParameter,
    SearchKey,
    SearchReturn,
    SequenceSet,
    SortCriterion,
    ThreadAlgorithm,
)

__all__ = [
    "AppendCommand",
    "AuthenticateCommand",
    "CapabilityCommand",
    "CatenateText",
    "CatenateUrl",
    "CheckCommand",
    "CloseCommand",
    "Command",
    "CompressCommand",
    "CopyCommand",
    "CreateCommand",
    "DeleteCommand",
    "EnableCommand",
    "ExpungeCommand",
    "FetchCommand",
    "GetQuotaCommand",
    "GetQuotaRootCommand",
    "IdCommand",
    "IdleCommand",
    "ListCommand",
    "LoginCommand",
    "LogoutCommand",
    "LsubCommand",
    "MoveCommand",
    "NamespaceCommand",
    "NoopCommand",
    "RenameCommand",
    "SearchCommand",
    "SelectCommand",
    "SortCommand",
    "StartTlsCommand",
    "StatusCommand",
    "StoreCommand",
    "StoreMode",
    "SubscribeCommand",
    "ThreadCommand",
    "UidExpungeCommand",
    "UnselectCommand",
    "UnsubscribeCommand",
]

# --------------------------------------------------------------------------- any state


@dataclass(frozen=True, slots=True)
class CapabilityCommand:
    tag: bytes


@dataclass(frozen=True, slots=True)
class NoopCommand:
    tag: bytes


@dataclass(frozen=True, slots=True)
class LogoutCommand:
    tag: bytes


@dataclass(frozen=True, slots=True)
class IdCommand:
    """RFC 2971. ``params`` is ``None`` for ``ID NIL``; values may be ``None`` (NIL)."""

    tag: bytes
    params: tuple[tuple[bytes, bytes | None], ...] | None


@dataclass(frozen=True, slots=True)
class EnableCommand:
    """RFC 5161."""

    tag: bytes
    capabilities: tuple[str, ...]


# --------------------------------------------------------------------------- not authenticated


@dataclass(frozen=True, slots=True)
class StartTlsCommand:
    """After answering OK the session must call ``Receiver.discard_pending()``."""

    tag: bytes


@dataclass(frozen=True, slots=True)
class AuthenticateCommand:
    """RFC 3501 section 6.2.2 with RFC 4959 SASL-IR.

    ``initial_response`` is the base64 text as sent (``=`` becomes ``b""``, the
    base64 of nothing), or ``None`` when the client sent none.
    """

    tag: bytes
    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class LoginCommand:
    tag: bytes
    userid: bytes
    password: bytes = field(repr=False)


# --------------------------------------------------------------------------- authenticated


@dataclass(frozen=True, slots=True)
class SelectCommand:
    """SELECT, or EXAMINE when ``readonly``, with RFC 7162's CONDSTORE and QRESYNC
    parameters (each at most once)."""

    tag: bytes
    mailbox: bytes
    readonly: bool = False
    condstore: bool = False
    qresync: QresyncParameter | None = None


@dataclass(frozen=True, slots=True)
class CreateCommand:
    """CREATE; ``use``: the special uses asked for (RFC 6154 section 3), if any."""

    tag: bytes
    mailbox: bytes
    use: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class DeleteCommand:
    tag: bytes
    mailbox: bytes


@dataclass(frozen=True, slots=True)
class RenameCommand:
    tag: bytes
    old: bytes
    new: bytes


@dataclass(frozen=True, slots=True)
class SubscribeCommand:
    tag: bytes
    mailbox: bytes


@dataclass(frozen=True, slots=True)
class UnsubscribeCommand:
    tag: bytes
    mailbox: bytes


@dataclass(frozen=True, slots=True)
class ListCommand:
    """LIST, with RFC 5258's selection options, patterns and return options.

    Options are upper-case atoms; ``status_items`` are RFC 5819's STATUS return
    option's items. ``extended``: the command used any of RFC 5258's syntax
    (options, even empty, or a list of patterns), so an empty pattern is not
    the request for the hierarchy delimiter and the reply may carry RFC 5258's
    attributes and extended data.
    """

    tag: bytes
    reference: bytes
    patterns: tuple[bytes, ...]
    select_options: frozenset[str] = frozenset()
    return_options: frozenset[str] = frozenset()
    status_items: tuple[str, ...] = ()
    extended: bool = False


@dataclass(frozen=True, slots=True)
class LsubCommand:
    tag: bytes
    reference: bytes
    pattern: bytes


@dataclass(frozen=True, slots=True)
class StatusCommand:
    """``items`` from MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE DELETED
    DELETED-STORAGE APPENDLIMIT HIGHESTMODSEQ (RFC 7162) MAILBOXID (RFC 8474), each once,
    in the order sent."""

    tag: bytes
    mailbox: bytes
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _MessageHead:
    """What APPEND says of each message before it (RFC 3501 section 6.3.11, RFC 3502):
    its flags, INTERNALDATE and literal, or that a CATENATE list builds it.

    ``size`` may exceed the receiver's ``max_append``: reject it with TOOBIG.
    ``binary``: the message came as a ``literal8`` (``~{n}``, RFC 3516 section
    4.4) and may hold NUL. ``catenate``: the message is a CATENATE list (RFC
    4469); no literal follows the head, but ``CatenateUrl`` and ``CatenateText``
    events up to the ``AppendEnd`` or ``AppendMessage`` that ends it (``size``
    is then 0).
    """

    tag: bytes
    flags: tuple[bytes, ...]
    date_time: datetime.datetime | None
    size: int
    synchronizing: bool
    binary: bool = False
    catenate: bool = False


@dataclass(frozen=True, slots=True)
class AppendCommand(_MessageHead):
    """The head of an APPEND to ``mailbox`` (RFC 3501 section 6.3.11) and of its
    first message (fields as in ``_MessageHead``, then ``mailbox``, keyword-only);
    the message follows as events.

    The session answers it by calling ``Receiver.accept_literal()`` (then
    ``LiteralChunk`` events and one ``AppendEnd``, or an ``AppendMessage`` for
    each further message of a MULTIAPPEND) or ``reject_literal()``.
    For a synchronizing literal the session sends ``+ ...`` before accepting.
    """

    mailbox: bytes = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class AppendMessage(_MessageHead):
    """The head of a further message of a MULTIAPPEND (RFC 3502 section 6.3.11):
    ``SP [flag-list SP] [date-time SP] literal`` right after the previous message.

    Not a command of its own: the receiver emits it between an ``AppendCommand``
    and its ``AppendEnd``, and the session answers it as it answers the
    ``AppendCommand``, with ``accept_literal()`` or ``reject_literal()``.
    """


@dataclass(frozen=True, slots=True)
class CatenateUrl:
    """``URL astring`` of a CATENATE list (RFC 4469 section 5): the message or
    part an IMAP URL (RFC 5092) names is the next piece of the message."""

    url: bytes


@dataclass(frozen=True, slots=True)
class CatenateText:
    """``TEXT literal`` (or ``literal8``) of a CATENATE list (RFC 4469 section 5):
    the head of the literal that is the next piece of the message. The session
    answers it as an ``AppendCommand``: ``accept_literal()`` (then
    ``LiteralChunk`` events) or ``reject_literal()``."""

    tag: bytes
    size: int
    synchronizing: bool
    binary: bool = False


@dataclass(frozen=True, slots=True)
class IdleCommand:
    """RFC 2177. After sending ``+ idling`` the session calls ``Receiver.start_idle()``."""

    tag: bytes


@dataclass(frozen=True, slots=True)
class CompressCommand:
    """``COMPRESS DEFLATE`` (RFC 4978), the one algorithm there is."""

    tag: bytes


@dataclass(frozen=True, slots=True)
class NamespaceCommand:
    """RFC 2342."""

    tag: bytes


@dataclass(frozen=True, slots=True)
class GetQuotaCommand:
    """RFC 9208 section 4.1.1: ``root`` is a quota root's name."""

    tag: bytes
    root: bytes


@dataclass(frozen=True, slots=True)
class GetQuotaRootCommand:
    """RFC 9208 section 4.1.2: the quota roots of ``mailbox``, which need not exist."""

    tag: bytes
    mailbox: bytes


# --------------------------------------------------------------------------- selected


@dataclass(frozen=True, slots=True)
class CheckCommand:
    tag: bytes


@dataclass(frozen=True, slots=True)
class CloseCommand:
    tag: bytes


@dataclass(frozen=True, slots=True)
class UnselectCommand:
    """RFC 3691."""

    tag: bytes


@dataclass(frozen=True, slots=True)
class ExpungeCommand:
    tag: bytes


@dataclass(frozen=True, slots=True)
class UidExpungeCommand:
    """RFC 4315 (UIDPLUS)."""

    tag: bytes
    sequence_set: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchCommand:
    """Several top-level keys arrive as one ``AndKey``.

    ``charset`` is upper-case as sent, ``None`` when absent (US-ASCII). The
    strings in ``key`` are raw bytes in that charset. ``returns``: the result
    options of an extended SEARCH (RFC 4731), answered with ESEARCH; ``None``
    for a plain SEARCH.
    """

    tag: bytes
    uid: bool
    charset: str | None
    key: SearchKey
    returns: SearchReturn | None = None


@dataclass(frozen=True, slots=True)
class SortCommand:
    """RFC 5256 SORT and UID SORT; ``charset``, ``key`` and ``returns`` as in
    `SearchCommand` (the charset is mandatory here; ``returns`` is RFC 5267's ESORT)."""

    tag: bytes
    uid: bool
    criteria: tuple[SortCriterion, ...]
    charset: str
    key: SearchKey
    returns: SearchReturn | None = None


@dataclass(frozen=True, slots=True)
class ThreadCommand:
    """RFC 5256 THREAD and UID THREAD; ``charset`` and ``key`` as in `SortCommand`."""

    tag: bytes
    uid: bool
    algorithm: ThreadAlgorithm
    charset: str
    key: SearchKey


@dataclass(frozen=True, slots=True)
class FetchCommand:
    """ALL/FAST/FULL arrive expanded. UID FETCH does not add UID here: the session does.

    ``changedsince`` and ``vanished`` are RFC 7162's modifiers (sections 3.1.4.1
    and 3.2.6): VANISHED comes only with UID FETCH and CHANGEDSINCE. ``partial``
    is RFC 9394's (section 3.3), with UID FETCH only.
    """

    tag: bytes
    uid: bool
    sequence_set: SequenceSet
    attributes: tuple[FetchAttribute, ...]
    changedsince: int | None = None
    vanished: bool = False
    partial: PartialRange | None = None


StoreMode: TypeAlias = Literal["replace", "add", "remove"]


@dataclass(frozen=True, slots=True)
class StoreCommand:
    """``FLAGS`` / ``+FLAGS`` / ``-FLAGS`` [``.SILENT``]; system flags in canonical case.

    ``unchangedsince`` is RFC 7162's conditional STORE modifier (section 3.1.3).
    """

    tag: bytes
    uid: bool
    sequence_set: SequenceSet
    mode: StoreMode
    silent: bool
    flags: tuple[bytes, ...]
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class CopyCommand:
    tag: bytes
    uid: bool
    sequence_set: SequenceSet
    mailbox: bytes


@dataclass(frozen=True, slots=True)
class MoveCommand:
    """RFC 6851."""

    tag: bytes
    uid: bool
    sequence_set: SequenceSet
    mailbox: bytes


Command: TypeAlias = (
    CapabilityCommand
    | NoopCommand
    | LogoutCommand
    | IdCommand
    | EnableCommand
    | StartTlsCommand
    | AuthenticateCommand
    | LoginCommand
    | SelectCommand
    | CreateCommand
    | DeleteCommand
    | RenameCommand
    | SubscribeCommand
    | UnsubscribeCommand
    | ListCommand
    | LsubCommand
    | StatusCommand
    | AppendCommand
    | IdleCommand
    | NamespaceCommand
    | CompressCommand
    | GetQuotaCommand
    | GetQuotaRootCommand
    | CheckCommand
    | CloseCommand
    | UnselectCommand
    | ExpungeCommand
    | UidExpungeCommand
    | SearchCommand
    | SortCommand
    | ThreadCommand
    | FetchCommand
    | StoreCommand
    | CopyCommand
    | MoveCommand
)
