"""One IMAP connection: the dispatcher, the connection state and the selected view.

The wire format lives in :mod:`lightmail.imap.wire` (sans-I/O), the rules of
a selected mailbox's view in :mod:`lightmail.imap.selected`, and the command
handlers in :mod:`lightmail.imap.handlers`, grouped by RFC area. One table
there, ``VERBS``, gives each command class the states that allow it, its
handler and its metrics label; the session looks a command up in it, checks
the state, calls the handler and sends the completion it returns with the
command's tag (``complete``). What handlers share is here: sending, the
announcement of other sessions' changes, sequence sets, and the one function
that maps mailstore errors to responses (invariant 4 of docs/architecture.md:
a temporary failure is ``NO [UNAVAILABLE]``, never a permanent refusal).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lightmail.accounts.service import Accounts, User
from lightmail.antivirus.clamd import ClamdClient
from lightmail.auth.policy import LoginPolicy
from lightmail.config import AntivirusSettings, ImapSettings
from lightmail.errors import (
    AuthenticationFailed,
    InvalidMailboxName,
    KeywordLimitExceeded,
    LightMailError,
    MailboxExists,
    MailboxNotAllowed,
    MailboxNotFound,
    MessageRejected,
    MessageTooLarge,
    PatternTooComplex,
    PermanentFailure,
    QuotaExceeded,
    SpecialUseNotSupported,
    TemporaryFailure,
)
from lightmail.imap.changes import SelectedChanges
from lightmail.imap.search import uses_message_numbers, uses_search_result, with_search_result
from lightmail.imap.selected import SelectedMailbox
from lightmail.imap.state import State
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import mutf7
from lightmail.imap.wire.parser import Utf8
from lightmail.imap.wire.receiver import (
    AppendEnd,
    BadCommand,
    ContinuationRequest,
    Event,
    IdleDone,
    LiteralChunk,
    Receiver,
    SaslResponse,
    Sentinel,
)
from lightmail.imap.wire.responses import (
    Code,
    Completion,
    ContinuationResponse,
    Response,
    ResponseCode,
    Status,
    TaggedResponse,
    UntaggedResponse,
    bad,
    no,
)
from lightmail.imap.wire.types import STAR, SequenceSet
from lightmail.mailstore import names
from lightmail.mailstore.store import MailStore
from lightmail.net.driver import Allowance, Driver, Goodbye, SessionEnd
from lightmail.net.limits import SessionLimiter
from lightmail.net.stream import Connection, StreamError
from lightmail.notify.bus import Subscription

log = logging.getLogger(__name__)

DELIMITER = names.DELIMITER.encode()  # printable ASCII: the same octet in modified UTF-7
META_BATCH = 500  # messages whose cached parse one query reads (FETCH, SEARCH)


Handler = Callable[["ImapSession", Any], Awaitable[Completion | None]]
"""``async def verb(session, command)``: the command's completion, or None when
the command was answered already (``ImapSession.complete``, or an event the
handler handed back to the driver, such as the BAD that broke off a literal)."""


@dataclass(frozen=True, slots=True)
class Verb:
    """One row of the command table: what the session needs to run a command."""

    states: frozenset[State]  # the states that allow it (RFC 3501 sections 3 and 6)
    handle: Handler
    metric: str  # the ``command`` label of the metrics; ``uid_`` prefixed for a UID form


@dataclass(frozen=True, slots=True)
class ImapContext:
    """What every session of one server shares."""

    settings: ImapSettings
    store: MailStore
    accounts: Accounts
    tls: Any  # ssl.SSLContext | None: STARTTLS is offered when set
    per_user: SessionLimiter
    hostname: str
    antivirus: AntivirusSettings
    scanner: ClamdClient | None  # None unless [antivirus] scan_append
    verbs: Mapping[type[c.Command], Verb]  # imap/handlers/__init__.py::VERBS


# The one table from mailstore and accounts errors to IMAP replies: the first class
# that matches counts, so a subclass stands before its base. A text is a str.format
# template of the error.
_REPLIES: tuple[tuple[type[LightMailError], Code | None, str], ...] = (
    (TemporaryFailure, Code.UNAVAILABLE, "Temporary failure, try again later"),
    (MailboxNotFound, Code.NONEXISTENT, "Mailbox does not exist"),
    (MailboxExists, Code.ALREADYEXISTS, "Mailbox already exists"),
    (InvalidMailboxName, Code.CANNOT, "Invalid mailbox name: {error.reason}"),
    (PatternTooComplex, Code.LIMIT, "Too many wildcards in the pattern (at most {error.limit})"),
    (MailboxNotAllowed, Code.CANNOT, "{error}"),
    (SpecialUseNotSupported, Code.USEATTR, "{error.attribute} is not supported"),
    (QuotaExceeded, Code.OVERQUOTA, "Quota exceeded"),
    (MessageTooLarge, Code.TOOBIG, "Message larger than {error.limit} octets"),
    (KeywordLimitExceeded, Code.LIMIT, "Keyword limit reached: {error}"),
    (AuthenticationFailed, Code.AUTHENTICATIONFAILED, "Authentication failed"),
    (MessageRejected, None, "Message rejected"),
    (PermanentFailure, Code.CANNOT, "{error}"),
)


def reply_for_error(error: LightMailError) -> Completion:
    """The NO for a mailstore or accounts error (``_REPLIES``; anything else is our bug)."""
    if isinstance(error, MailboxNotFound) and error.try_create:
        return no("Mailbox does not exist", Code.TRYCREATE)
    for kind, code, text in _REPLIES:
        if isinstance(error, kind):
            return no(text.format(error=error), code)
    return no("Internal error", Code.SERVERBUG)


# RFC 9755 section 3: no C0 or C1 control, DEL, LINE or PARAGRAPH SEPARATOR in a name.
_UTF8_NAME_FORBIDDEN = frozenset(
    [*map(chr, range(0x20)), *map(chr, range(0x7F, 0xA0)), "\u2028", "\u2029"]
)


def flag_names(flags: Iterable[bytes]) -> list[str]:
    return [flag.decode("utf-8", "replace") for flag in flags]


class ImapSession(SelectedChanges):
    """Serves one connection until LOGOUT, BYE, a timeout or the peer leaves; what it
    tells of changes to the selected mailbox is in :mod:`lightmail.imap.changes`."""

    def __init__(self, context: ImapContext, connection: Connection) -> None:
        self.ctx = context
        self.settings = context.settings
        self.store = context.store
        self.conn = connection
        self.receiver = Receiver(
            max_line=self.settings.max_line_length,
            max_append=self.settings.max_append_size,
            max_search_keys=self.settings.max_search_keys,
        )
        self.driver = Driver("imap", connection, self.receiver, self)
        self.login = LoginPolicy(connection, self.settings, goodbye=_bye("Too many failed logins"))
        self.state = State.NOT_AUTHENTICATED
        self.user: User | None = None
        self.selected: SelectedMailbox | None = None
        self.modseq = 0  # HIGHESTMODSEQ of the selected mailbox when last looked at
        # RFC 7162: CONDSTORE enabled (section 3.1), QRESYNC enabled (section 3.2.3)
        self.condstore = False
        self.qresync = False
        # ENABLE UTF8=ACCEPT (RFC 9755) and ENABLE IMAP4rev2 (RFC 9051): mailbox names,
        # quoted strings and header fields in UTF-8; see ``enable_utf8``.
        self._utf8: set[Utf8] = set()
        # While the view holds back expunges: a mod-sequence from before all of them
        # (RFC 7162 section 3.2), else None.
        self._expunge_floor: int | None = None
        self.subscription: Subscription | None = None
        self._changed = False  # another session changed the selected mailbox; not yet shown
        self._bad_commands = Allowance(
            self.settings.max_bad_commands, _bye("Too many invalid commands")
        )
        self._before_login = Allowance(
            self.settings.max_commands_before_login, _bye("Too many commands without logging in")
        )
        self._resources = contextlib.AsyncExitStack()

    async def run(self) -> None:
        try:
            async with self._resources:
                greeting = UntaggedResponse(Status.OK, "LightMail ready", self.capability_code())
                await self.driver.serve(greeting.to_bytes())
        finally:
            if self.user is not None:
                await self.ctx.per_user.leave(self.user.id)
            await self.conn.close()

    def read_limits(self) -> tuple[float, float | None]:
        return self.login.read_limits(
            self.state is not State.NOT_AUTHENTICATED, self.settings.idle_timeout
        )

    def goodbye(self, reason: Goodbye) -> bytes:
        return _GOODBYES[reason]

    def verb(self, event: Event) -> str | None:
        if isinstance(event, BadCommand):
            return "other"
        if isinstance(event, c.Command):
            return self._metric(event)
        return None  # continuation requests are not commands

    async def handle(self, event: Event) -> None:
        if isinstance(event, BadCommand):
            await self._bad(event)
        elif isinstance(event, ContinuationRequest):
            self.send(ContinuationResponse("Ready for literal"))
        elif isinstance(
            event,
            LiteralChunk
            | c.AppendMessage
            | c.CatenateUrl
            | c.CatenateText
            | AppendEnd
            | IdleDone
            | SaslResponse
            | Sentinel,
        ):
            # The receiver emits these only in the mode a handler put it in.
            raise AssertionError(f"unexpected event {event!r}")
        else:
            await self._command(event)

    async def _command(self, command: c.Command) -> None:
        if self.state is State.NOT_AUTHENTICATED:
            self._before_login.spend()
        verb = self.ctx.verbs[type(command)]
        if self.state not in verb.states:
            await self._wrong_state(command)
            return
        command = self.with_search_result(command)
        try:
            completion = await verb.handle(self, command)
        except LightMailError as error:
            # Nothing here may need the database: it may be what just failed. What
            # other sessions changed is announced after the next command.
            view = self.selected
            if view is not None and self.may_expunge(command) and view.has_pending_expunges:
                self.send_updates(view.release_expunges())
            completion = reply_for_error(error)
        except BadSequence:  # raised by resolve() before a handler changes anything
            completion = bad("Invalid message sequence number")
        except (SessionEnd, StreamError):
            raise
        except Exception:
            log.exception("imap %s: %s failed", self.conn.id, type(command).__name__)
            completion = no("Internal error", Code.SERVERBUG)
        if completion is not None:
            self.complete(command, completion)

    def _metric(self, command: c.Command) -> str:
        """The ``command`` label of the metrics: a fixed set of lower-case verbs."""
        verb = self.ctx.verbs.get(type(command))
        if verb is None:
            return "other"
        if isinstance(command, c.SelectCommand) and command.readonly:
            return "examine"
        # SEARCH, FETCH, STORE, COPY and MOVE have a UID form (RFC 3501 6.4.8).
        return f"uid_{verb.metric}" if getattr(command, "uid", False) else verb.metric

    async def _wrong_state(self, command: c.Command) -> None:
        if isinstance(command, c.AppendCommand):
            self.receiver.reject_literal()
        await self._bad(BadCommand(command.tag, f"Command not valid in {self.state.value} state"))

    async def _bad(self, bad: BadCommand) -> None:
        code = ResponseCode(Code(bad.code)) if bad.code in Code.__members__ else None
        if bad.fatal:
            raise SessionEnd(_bye(bad.text))
        if bad.tag is None:
            self.send(UntaggedResponse(Status.BAD, bad.text, code))
        else:
            self.send(TaggedResponse(bad.tag, Status.BAD, bad.text, code))
        self._bad_commands.spend_last()

    def send(self, response: Response) -> None:
        self.driver.send(response.to_bytes())

    def complete(self, command: c.Command, completion: Completion) -> None:
        """Send ``completion`` with ``command``'s tag: the one place a tag goes on a
        completion. The dispatcher calls it with what the handler returns; a
        handler calls it itself only when it must act once its completion is
        queued (STARTTLS then starts the handshake, LOGOUT ends the session, a
        failed login counts towards the limit that ends it), and then returns
        None."""
        self.send(completion.tagged(command.tag))

    def capabilities(self) -> list[str]:
        capabilities = ["IMAP4rev1", "IMAP4rev2"]  # rev2 once enabled (RFC 9051 Appendix A)
        capabilities += ["LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE"]
        capabilities += ["UNSELECT", "UIDPLUS", "MULTIAPPEND", "MOVE", "CHILDREN", "SPECIAL-USE"]
        capabilities += ["LIST-EXTENDED", "LIST-STATUS", "STATUS=SIZE", "CREATE-SPECIAL-USE"]
        capabilities += ["QUOTA", "QUOTA=RES-STORAGE"]
        capabilities += ["CONDSTORE", "QRESYNC"]
        capabilities += ["SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"]
        capabilities.append("OBJECTID")
        capabilities += ["ESEARCH", "ESORT", "PARTIAL", "SEARCHRES", "UTF8=ACCEPT", "BINARY"]
        capabilities.append("CATENATE")
        capabilities.append(f"APPENDLIMIT={self.settings.max_append_size}")
        if self.state is State.NOT_AUTHENTICATED:
            if self.ctx.tls is not None and not self.conn.is_tls:
                capabilities.append("STARTTLS")
            if self.login.plaintext_ok:
                capabilities += ["AUTH=PLAIN", "AUTH=LOGIN"]
            else:
                capabilities.append("LOGINDISABLED")
        elif not self.conn.is_compressed:
            capabilities.append(
                "COMPRESS=DEFLATE"
            )  # RFC 4978: a command of the authenticated state
        return capabilities

    def enable_utf8(self, mode: Utf8) -> bool:
        """ENABLE UTF8=ACCEPT (RFC 9755 section 3) or ENABLE IMAP4rev2 (RFC 9051 sections
        4.3.1 and 5.1): from now on mailbox names are UTF-8, not modified UTF-7, and
        quoted strings and APPENDed header fields may hold UTF-8. Valid in the
        Authenticated state only; True if this enabled ``mode``."""
        if mode in self._utf8 or self.state is not State.AUTHENTICATED:
            return False
        self._utf8.add(mode)
        self.receiver.accept_utf8(mode)
        return True

    @property
    def utf8(self) -> bool:
        """Mailbox names and header fields in UTF-8 (see :meth:`enable_utf8`)."""
        return bool(self._utf8)

    @property
    def rev2(self) -> bool:
        """The client enabled IMAP4rev2 (RFC 9051 Appendix A): SEARCH answers with
        ESEARCH, SELECT with a LIST response, and ``\\Recent`` and RECENT are gone."""
        return Utf8.REV2 in self._utf8

    def decode_mailbox(self, raw: bytes) -> str:
        """A mailbox name from the wire, normalised: modified UTF-7 (RFC 3501 section
        5.1.3), or UTF-8 after ENABLE UTF8=ACCEPT (RFC 9755 section 3)."""
        try:
            name = raw.decode() if self.utf8 else mutf7.decode(raw)
        except ValueError:
            reason = "not UTF-8" if self.utf8 else "not modified UTF-7"
            raise InvalidMailboxName(raw.decode("utf-8", "replace"), reason) from None
        if self.utf8 and not _UTF8_NAME_FORBIDDEN.isdisjoint(name):
            raise InvalidMailboxName(name, "the name contains a control or separator character")
        return names.normalize(name)

    def encode_mailbox(self, name: str) -> bytes:
        """A mailbox name for the wire, as :meth:`decode_mailbox` reads it."""
        return name.encode() if self.utf8 else mutf7.encode(name)

    def decode_pattern(self, raw: bytes) -> str:
        """A LIST or LSUB reference or pattern (see :func:`mutf7.decode_pattern`); after
        ENABLE UTF8=ACCEPT, UTF-8 (what is not UTF-8 matches no name)."""
        return raw.decode("utf-8", "surrogateescape") if self.utf8 else mutf7.decode_pattern(raw)

    def capability_code(self) -> ResponseCode:
        return ResponseCode.capability(self.capabilities())

    @property
    def user_id(self) -> int:
        if self.user is None:
            raise AssertionError("no user: the state table allows this only when authenticated")
        return self.user.id

    def deselect(self) -> None:
        self.selected = None
        self.state = State.AUTHENTICATED
        self._expunge_floor = None

    def enable_condstore(self) -> bool:
        """A CONDSTORE enabling command (RFC 7162 section 3.1): from now on every
        FETCH response this session sends for a flag change carries MODSEQ. The
        first one with a mailbox selected tells its HIGHESTMODSEQ: the value this
        view is current at. False when it was enabled already."""
        if self.condstore:
            return False
        self.condstore = True
        if self.selected is not None:
            self.send(
                UntaggedResponse(Status.OK, "Highest", ResponseCode.highestmodseq(self.modseq))
            )
        return True

    async def watch(self) -> None:
        """Subscribe to the user's change events for the rest of the session."""
        if self.subscription is None:
            self.subscription = await self._resources.enter_async_context(
                self.store.bus.subscription(self.user_id)
            )

    @property
    def view(self) -> SelectedMailbox:
        if self.selected is None:
            raise AssertionError("the state table allows this only in the selected state")
        return self.selected

    def with_search_result(self, command: c.Command) -> c.Command:
        """The command with each ``$`` replaced by the saved search result (RFC 5182
        section 2.1): by sequence number, or by UID in a UID command or after the
        UID search key, as the view numbers the messages now."""
        view = self.selected
        if view is None:
            return command
        if isinstance(command, c.SearchCommand | c.SortCommand | c.ThreadCommand):
            if not uses_search_result(command.key):
                return command
            numbers = view.search_result_set(uid=False)
            key = with_search_result(command.key, numbers, view.search_result_set(uid=True))
            return dataclasses.replace(command, key=key)
        if isinstance(command, c.UidExpungeCommand) and command.sequence_set.saved:
            return dataclasses.replace(command, sequence_set=view.search_result_set(uid=True))
        uses_numbers = c.FetchCommand | c.StoreCommand | c.CopyCommand | c.MoveCommand
        if isinstance(command, uses_numbers) and command.sequence_set.saved:
            saved = view.search_result_set(uid=command.uid)
            return dataclasses.replace(command, sequence_set=saved)
        return command

    def may_expunge(self, command: c.Command) -> bool:
        """RFC 3501 7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH, nor SORT
        or THREAD (RFC 5256); their UID forms may, but not a UID SEARCH, SORT or THREAD
        with message numbers (RFC 7162 section 3.2.10.2)."""
        if isinstance(command, c.SearchCommand | c.SortCommand | c.ThreadCommand):
            return command.uid and not uses_message_numbers(command.key)
        if isinstance(command, c.FetchCommand | c.StoreCommand):
            return command.uid
        return True

    def enable_qresync(self) -> bool:
        """ENABLE QRESYNC (RFC 7162 section 3.2.3): CONDSTORE too, and VANISHED instead
        of EXPUNGE from now on. False when it was enabled already."""
        if self.qresync:
            return False
        self.qresync = True
        self.enable_condstore()
        return True

    def resolve(self, sequence_set: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) of the messages a set names, in sequence order.

        A UID set silently skips UIDs that do not exist (RFC 3501 6.4.8). A
        message sequence number past the end is the client's error (BAD),
        except through ``*``, which stands for the last message (none in an
        empty mailbox).
        """
        view = self.view
        if uid:
            found = {
                (view.seq_of(number) or 0, number)
                for low, high in sequence_set.bounds(view.largest_uid or 1)
                for number in view.uids_between(low, high)
            }
            return sorted(found)
        pairs: set[tuple[int, int]] = set()
        for first, last in sequence_set.ranges:
            if view.exists == 0 and STAR in (first, last):
                continue
            low, high = sorted(view.exists if n is STAR else n for n in (first, last))
            if high > view.exists:
                raise BadSequence
            pairs.update((seq, view.uid_of(seq)) for seq in range(low, high + 1))
        return sorted(pairs)


def _bye(text: str) -> bytes:
    """The untagged BYE that ends a session (RFC 3501 section 7.1.5)."""
    return UntaggedResponse(Status.BYE, text).to_bytes()


# What the driver says when it ends a session (RFC 3501 section 7.1.5).
_GOODBYES = {
    Goodbye.DEADLINE: _bye("Autologout; took too long to log in"),
    Goodbye.IDLE: _bye("Autologout; idle for too long"),
    Goodbye.SHUTDOWN: _bye("Server shutting down"),
}


class BadSequence(Exception):
    """A message sequence number beyond the mailbox: the client's error, answered
    BAD by the dispatcher (``ImapSession._command``)."""
