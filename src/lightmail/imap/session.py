"""One IMAP connection: reads commands, calls the mailstore, writes responses.

The wire format lives in :mod:`lightmail.imap.wire` (sans-I/O), the rules of
a selected mailbox's view in :mod:`lightmail.imap.selected`, rendering of
cached parse results in :mod:`lightmail.imap.fetch` and SEARCH evaluation in
:mod:`lightmail.imap.search`. This module is the glue: one handler per
command type, dispatched by a dict, and one function that maps mailstore
errors to responses (invariant 4 of docs/architecture.md: a temporary failure
is ``NO [UNAVAILABLE]``, never a permanent refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from lightmail import __version__
from lightmail.accounts.service import Accounts, User
from lightmail.antivirus.clamd import ClamdClient
from lightmail.antivirus.policy import ingest_scanned
from lightmail.auth.policy import LoginPolicy
from lightmail.auth.sasl import (
    InvalidBase64,
    InvalidCredentials,
    SaslExchange,
    UnsupportedMechanism,
)
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
    TemporaryFailure,
)
from lightmail.fairness import TimeSlice
from lightmail.imap import fetch, search
from lightmail.imap.selected import SelectedMailbox, Snapshot, Updates
from lightmail.imap.state import State, allowed
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import mutf7
from lightmail.imap.wire.receiver import (
    NEED_DATA,
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
    ContinuationResponse,
    DataResponse,
    Raw,
    Response,
    ResponseCode,
    Status,
    TaggedResponse,
    UntaggedResponse,
    astring,
    capability_response,
    exists_response,
    expunge_response,
    fetch_response,
    flag_list,
    flags_response,
    literal,
    literal_octets,
    paren_list,
    quoted,
    recent_response,
)
from lightmail.imap.wire.types import STAR, BodySection, FetchItem, SectionText, SequenceSet
from lightmail.mailstore import names
from lightmail.mailstore.store import MailStore, MessageInfo, MessageMeta, StoreMode
from lightmail.metrics import APPENDS, BLOBS_MISSING
from lightmail.net.driver import Driver, Goodbye, SessionEnd
from lightmail.net.listener import ConnectionLimiter
from lightmail.net.stream import Connection, StreamError
from lightmail.notify.bus import Subscription
from lightmail.storage.blobs.base import BlobNotFound

log = logging.getLogger(__name__)

SYSTEM_FLAGS = (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft")
_CHARSETS = ("US-ASCII", "UTF-8")
_STREAM_CHUNK = 256 * 1024
_DELIMITER = names.DELIMITER.encode()  # printable ASCII: the same octet in modified UTF-7
_STORE_MODES = {"replace": StoreMode.REPLACE, "add": StoreMode.ADD, "remove": StoreMode.REMOVE}


@dataclass(frozen=True, slots=True)
class ImapContext:
    """What every session of one server shares."""

    settings: ImapSettings
    store: MailStore
    accounts: Accounts
    tls: Any  # ssl.SSLContext | None: STARTTLS is offered when set
    per_user: ConnectionLimiter
    hostname: str
    antivirus: AntivirusSettings
    scanner: ClamdClient | None  # None unless [antivirus] scan_append


def reply_for_error(tag: bytes, error: LightMailError) -> TaggedResponse:
    """The one mapping from mailstore and accounts errors to IMAP replies."""
    code: Code | None
    match error:
        case TemporaryFailure():
            code, text = Code.UNAVAILABLE, "Temporary failure, try again later"
        case MailboxNotFound() if error.try_create:
            code, text = Code.TRYCREATE, "Mailbox does not exist"
        case MailboxNotFound():
            code, text = Code.NONEXISTENT, "Mailbox does not exist"
        case MailboxExists():
            code, text = Code.ALREADYEXISTS, "Mailbox already exists"
        case InvalidMailboxName():
            code, text = Code.CANNOT, f"Invalid mailbox name: {error.reason}"
        case PatternTooComplex():
            code, text = Code.LIMIT, f"Too many wildcards in the pattern (at most {error.limit})"
        case MailboxNotAllowed():
            code, text = Code.CANNOT, str(error)
        case QuotaExceeded():
            code, text = Code.OVERQUOTA, "Quota exceeded"
        case MessageTooLarge():
            code, text = Code.TOOBIG, f"Message larger than {error.limit} octets"
        case KeywordLimitExceeded():
            code, text = Code.LIMIT, f"Keyword limit reached: {error}"
        case AuthenticationFailed():
            code, text = Code.AUTHENTICATIONFAILED, "Authentication failed"
        case MessageRejected():
            code, text = None, "Message rejected"
        case PermanentFailure():
            code, text = Code.CANNOT, str(error)
        case _:
            code, text = Code.SERVERBUG, "Internal error"
    return TaggedResponse(tag, Status.NO, text, ResponseCode(code) if code else None)


def _decode_mailbox(raw: bytes) -> str:
    """A mailbox name from the wire (RFC 3501 section 5.1.3), normalised."""
    try:
        name = mutf7.decode(raw)
    except ValueError:
        raise InvalidMailboxName(raw.decode("ascii", "replace"), "not modified UTF-7") from None
    return names.normalize(name)


def _decode_list_pattern(reference: bytes, pattern: bytes) -> names.MailboxPattern:
    """LIST's and LSUB's arguments (RFC 3501 section 6.3.8). They are patterns, not
    names: one that is not modified UTF-7 is matched as it reads, never refused."""
    return names.MailboxPattern(mutf7.decode_pattern(reference), mutf7.decode_pattern(pattern))


def _flag_names(flags: Iterable[bytes]) -> list[str]:
    return [flag.decode("utf-8", "replace") for flag in flags]


def _flag_bytes(flags: Iterable[str]) -> list[bytes]:
    return [flag.encode() for flag in flags]


def _internaldate(value: datetime) -> bytes:
    """``date-time`` (RFC 3501 section 9) in the zone the message was given
    (RFC 3501 section 2.3.3); a naive value is UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return b'"' + value.strftime("%d-%b-%Y %H:%M:%S %z").encode() + b'"'


class ImapSession:
    """Serves one connection until LOGOUT, BYE, a timeout or the peer leaves."""

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
        self.login = LoginPolicy(
            connection,
            login_timeout=self.settings.login_timeout,
            plaintext_allowed=self.settings.plaintext_allowed,
            max_failures=self.settings.max_login_failures,
            goodbye=_bye("Too many failed logins"),
        )
        self.state = State.NOT_AUTHENTICATED
        self.user: User | None = None
        self.selected: SelectedMailbox | None = None
        self._modseq = 0  # HIGHESTMODSEQ of the selected mailbox when last looked at
        self._subscription: Subscription | None = None
        self._changed = False  # another session changed the selected mailbox; not yet shown
        self._bad_commands = 0
        self._commands_before_login = 0
        self._resources = contextlib.AsyncExitStack()
        self._append_ended = False
        self._handlers: dict[type[Any], Callable[[Any], Awaitable[None]]] = {
            c.CapabilityCommand: self._capability,
            c.NoopCommand: self._noop,
            c.LogoutCommand: self._logout,
            c.IdCommand: self._id,
            c.StartTlsCommand: self._starttls,
            c.AuthenticateCommand: self._authenticate,
            c.LoginCommand: self._login,
            c.EnableCommand: self._enable,
            c.SelectCommand: self._select,
            c.CreateCommand: self._create,
            c.DeleteCommand: self._delete,
            c.RenameCommand: self._rename,
            c.SubscribeCommand: self._subscribe,
            c.UnsubscribeCommand: self._unsubscribe,
            c.ListCommand: self._list,
            c.LsubCommand: self._lsub,
            c.StatusCommand: self._status,
            c.AppendCommand: self._append,
            c.NamespaceCommand: self._namespace,
            c.IdleCommand: self._idle,
            c.CheckCommand: self._noop,
            c.CloseCommand: self._close,
            c.UnselectCommand: self._unselect,
            c.ExpungeCommand: self._expunge,
            c.UidExpungeCommand: self._expunge,
            c.SearchCommand: self._search,
            c.FetchCommand: self._fetch,
            c.StoreCommand: self._store,
            c.CopyCommand: self._copy,
            c.MoveCommand: self._copy,
        }

    # -- the connection loop ----------------------------------------------------

    async def run(self) -> None:
        try:
            async with self._resources:
                greeting = UntaggedResponse(Status.OK, "LightMail ready", self._capability_code())
                await self.driver.serve(greeting.to_bytes())
        finally:
            if self.user is not None:
                self.ctx.per_user.release(self.user.id)
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
            return _command_name(event)
        return None  # continuation requests are not commands

    async def handle(self, event: Event) -> None:
        if isinstance(event, BadCommand):
            await self._bad(event)
        elif isinstance(event, ContinuationRequest):
            self._send(ContinuationResponse("Ready for literal"))
        elif isinstance(event, LiteralChunk | AppendEnd | IdleDone | SaslResponse | Sentinel):
            # The receiver emits these only in the mode a handler put it in.
            raise AssertionError(f"unexpected event {event!r}")
        else:
            await self._command(event)

    async def _command(self, command: c.Command) -> None:
        if self.state is State.NOT_AUTHENTICATED:
            self._commands_before_login += 1
            if self._commands_before_login > self.settings.max_commands_before_login:
                raise SessionEnd(_bye("Too many commands without logging in"))
        if not allowed(command, self.state):
            await self._wrong_state(command)
            return
        try:
            await self._handlers[type(command)](command)
        except LightMailError as error:
            # Nothing here may need the database: it may be what just failed. What
            # other sessions changed is announced after the next command.
            view = self.selected
            if view is not None and self._may_expunge(command) and view.has_pending_expunges:
                self._send_updates(view.release_expunges())
            self._send(reply_for_error(command.tag, error))
        except (SessionEnd, StreamError):
            raise
        except Exception:
            log.exception("imap %s: %s failed", self.conn.id, type(command).__name__)
            self._send(
                TaggedResponse(
                    command.tag, Status.NO, "Internal error", ResponseCode(Code.SERVERBUG)
                )
            )

    async def _wrong_state(self, command: c.Command) -> None:
        if isinstance(command, c.AppendCommand):
            self.receiver.reject_literal()
        await self._bad(BadCommand(command.tag, f"Command not valid in {self.state.value} state"))

    async def _bad(self, bad: BadCommand) -> None:
        code = ResponseCode(Code(bad.code)) if bad.code in Code.__members__ else None
        if bad.fatal:
            raise SessionEnd(_bye(bad.text))
        if bad.tag is None:
            self._send(UntaggedResponse(Status.BAD, bad.text, code))
        else:
            self._send(TaggedResponse(bad.tag, Status.BAD, bad.text, code))
        self._bad_commands += 1
        if self._bad_commands >= self.settings.max_bad_commands:
            raise SessionEnd(_bye("Too many invalid commands"))

    # -- output -----------------------------------------------------------------

    def _send(self, response: Response) -> None:
        self.driver.send(response.to_bytes())

    def _ok(self, tag: bytes, text: str = "completed", code: ResponseCode | None = None) -> None:
        self._send(TaggedResponse(tag, Status.OK, text, code))

    # -- capabilities and any-state commands --------------------------------------

    def _capabilities(self) -> list[str]:
        capabilities = ["IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE"]
        capabilities += ["UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "SPECIAL-USE"]
        capabilities.append(f"APPENDLIMIT={self.settings.max_append_size}")
        if self.state is State.NOT_AUTHENTICATED:
            if self.ctx.tls is not None and not self.conn.is_tls:
                capabilities.append("STARTTLS")
            if self.login.plaintext_ok:
                capabilities += ["AUTH=PLAIN", "AUTH=LOGIN"]
            else:
                capabilities.append("LOGINDISABLED")
        return capabilities

    def _capability_code(self) -> ResponseCode:
        return ResponseCode.capability(self._capabilities())

    async def _capability(self, command: c.CapabilityCommand) -> None:
        self._send(capability_response(self._capabilities()))
        self._ok(command.tag)

    async def _noop(self, command: c.NoopCommand | c.CheckCommand) -> None:
        await self._announce(allow_expunge=True, force=True)
        self._ok(command.tag)

    async def _logout(self, command: c.LogoutCommand) -> None:
        self._send(UntaggedResponse(Status.BYE, "Logging out"))
        self._ok(command.tag)
        self.state = State.LOGOUT
        raise SessionEnd

    async def _id(self, command: c.IdCommand) -> None:
        """RFC 2971: say who we are; what the client says is only logged."""
        if command.params:
            fields = {k.decode("ascii", "replace"): v for k, v in command.params}
            log.debug("imap %s: client id %s", self.conn.id, fields)
        info = paren_list(
            [
                quoted(b"name"),
                quoted(b"LightMail"),
                quoted(b"version"),
                quoted(__version__.encode()),
            ]
        )
        self._send(DataResponse(b"ID " + info))
        self._ok(command.tag)

    async def _namespace(self, command: c.NamespaceCommand) -> None:
        """RFC 2342: one personal namespace, no others."""
        self._send(DataResponse(b'NAMESPACE (("" "/")) NIL NIL'))
        self._ok(command.tag)

    async def _enable(self, command: c.EnableCommand) -> None:
        """RFC 5161: none of our extensions needs enabling, so none is enabled."""
        self._send(DataResponse(b"ENABLED"))
        self._ok(command.tag)

    # -- not authenticated ------------------------------------------------------

    async def _starttls(self, command: c.StartTlsCommand) -> None:
        if self.ctx.tls is None or self.conn.is_tls:
            self._send(TaggedResponse(command.tag, Status.BAD, "TLS is not available here"))
            return
        self._ok(command.tag, "Begin TLS negotiation now")
        await self.driver.start_tls(self.ctx.tls)

    async def _login(self, command: c.LoginCommand) -> None:
        if not self.login.plaintext_ok:
            self._send(
                TaggedResponse(
                    command.tag,
                    Status.NO,
                    "Plaintext login is disabled without TLS: use STARTTLS",
                    ResponseCode(Code.PRIVACYREQUIRED),
                )
            )
            return
        await self._authenticated(
            command.tag,
            command.userid.decode("utf-8", "replace"),
            command.password.decode("utf-8", "replace"),
        )

    async def _authenticate(self, command: c.AuthenticateCommand) -> None:
        """AUTHENTICATE PLAIN (RFC 4616) and LOGIN, with SASL-IR (RFC 4959)."""
        tag = command.tag
        if not self.login.plaintext_ok:
            self._send(
                TaggedResponse(
                    tag,
                    Status.NO,
                    "Authentication requires TLS: use STARTTLS",
                    ResponseCode(Code.PRIVACYREQUIRED),
                )
            )
            return
        try:
            exchange = SaslExchange(command.mechanism)
        except UnsupportedMechanism:
            self._send(
                TaggedResponse(
                    tag,
                    Status.NO,
                    "Unsupported authentication mechanism",
                    ResponseCode(Code.CANNOT),
                )
            )
            return
        # RFC 4959: the initial response is base64 like any other (``=`` is empty).
        response = command.initial_response
        try:
            while True:
                if response is None:
                    response = await self._sasl_challenge(tag, exchange.challenge())
                    if response is None:
                        return
                credentials = exchange.respond(response)
                if credentials is not None:
                    break
                response = None
        except InvalidBase64:
            self._send(TaggedResponse(tag, Status.BAD, "Invalid base64 in SASL response"))
            return
        except InvalidCredentials:
            self._send(
                TaggedResponse(
                    tag,
                    Status.NO,
                    f"Invalid {exchange.mechanism} credentials",
                    ResponseCode(Code.AUTHENTICATIONFAILED),
                )
            )
            self.login.count_failure()
            return
        await self._authenticated(tag, credentials.username, credentials.password)

    async def _sasl_challenge(self, tag: bytes, challenge: str) -> bytes | None:
        """Send a ``+`` challenge and return the answer as sent (None: answered already)."""
        self._send(ContinuationResponse(challenge))
        self.receiver.expect_sasl_response()
        event = await self.driver.next_event()
        if not isinstance(event, SaslResponse):
            await self.driver.dispatch(event)
            return None
        if event.cancelled:
            self._send(TaggedResponse(tag, Status.BAD, "Authentication cancelled"))
            return None
        return event.data

    async def _authenticated(self, tag: bytes, address: str, password: str) -> None:
        try:
            user = await self.ctx.accounts.authenticate(address, password, self.conn.peer_ip)
        except AuthenticationFailed:
            log.info("imap %s: failed login for %r from %s", self.conn.id, address, self.conn.peer)
            self._send(
                TaggedResponse(
                    tag, Status.NO, "Authentication failed", ResponseCode(Code.AUTHENTICATIONFAILED)
                )
            )
            self.login.count_failure()
            return
        if not self.ctx.per_user.try_acquire(user.id):
            self._send(
                TaggedResponse(
                    tag, Status.NO, "Too many connections for this user", ResponseCode(Code.LIMIT)
                )
            )
            return
        self.user = user
        self.state = State.AUTHENTICATED
        log.info("imap %s: %s logged in from %s", self.conn.id, user.address, self.conn.peer)
        self._ok(tag, "Logged in", self._capability_code())

    # -- mailboxes ----------------------------------------------------------------

    @property
    def _user_id(self) -> int:
        if self.user is None:
            raise AssertionError("no user: the state table allows this only when authenticated")
        return self.user.id

    async def _select(self, command: c.SelectCommand) -> None:
        """SELECT and EXAMINE (RFC 3501 sections 6.3.1 and 6.3.2)."""
        if self.selected is not None:
            self._deselect()  # a failed SELECT leaves nothing selected
        name = _decode_mailbox(command.mailbox)
        mailbox = await self.store.get_mailbox(self._user_id, name)
        infos = await self.store.list_messages(mailbox)
        recent = await self.store.claim_recent(mailbox, readonly=command.readonly)
        view = SelectedMailbox(
            mailbox.id,
            (Snapshot(i.uid, i.flags.names()) for i in infos),
            readonly=command.readonly,
            recent=recent,
            keywords=mailbox.keywords,
            keyword_room=self.store.may_create_keywords(mailbox),
        )
        self._modseq = mailbox.highestmodseq
        self.selected = view
        self.state = State.SELECTED
        self._send_keywords(view)
        self._send(exists_response(view.exists))
        self._send(recent_response(view.recent_count))
        unseen = view.first_unseen()
        if unseen is not None:
            self._send(UntaggedResponse(Status.OK, "First unseen", ResponseCode.unseen(unseen)))
        self._send(
            UntaggedResponse(Status.OK, "UIDs valid", ResponseCode.uidvalidity(mailbox.uidvalidity))
        )
        self._send(
            UntaggedResponse(Status.OK, "Predicted next UID", ResponseCode.uidnext(mailbox.uidnext))
        )
        mode = Code.READ_ONLY if command.readonly else Code.READ_WRITE
        self._ok(command.tag, "Select completed", ResponseCode(mode))
        await self._watch()

    def _deselect(self) -> None:
        self.selected = None
        self.state = State.AUTHENTICATED

    async def _watch(self) -> None:
        """Subscribe to the user's change events for the rest of the session."""
        if self._subscription is None:
            self._subscription = await self._resources.enter_async_context(
                self.store.bus.subscription(self._user_id)
            )

    async def _create(self, command: c.CreateCommand) -> None:
        """CREATE (RFC 3501 section 6.3.3). A trailing delimiter only declares that names
        will be created below this one: the name is created without it."""
        raw = command.mailbox
        if raw.endswith(_DELIMITER):
            raw = raw[:-1]
        await self.store.create_mailbox(self._user_id, _decode_mailbox(raw))
        await self._announce(allow_expunge=True)
        self._ok(command.tag, "Create completed")

    async def _delete(self, command: c.DeleteCommand) -> None:
        await self.store.delete_mailbox(self._user_id, _decode_mailbox(command.mailbox))
        await self._announce(allow_expunge=True)
        self._ok(command.tag, "Delete completed")

    async def _rename(self, command: c.RenameCommand) -> None:
        await self.store.rename_mailbox(
            self._user_id, _decode_mailbox(command.old), _decode_mailbox(command.new)
        )
        await self._announce(allow_expunge=True)
        self._ok(command.tag, "Rename completed")

    async def _subscribe(self, command: c.SubscribeCommand) -> None:
        await self.store.subscribe(self._user_id, _decode_mailbox(command.mailbox))
        self._ok(command.tag, "Subscribe completed")

    async def _unsubscribe(self, command: c.UnsubscribeCommand) -> None:
        await self.store.unsubscribe(self._user_id, _decode_mailbox(command.mailbox))
        self._ok(command.tag, "Unsubscribe completed")

    async def _list(self, command: c.ListCommand) -> None:
        """LIST (RFC 3501 section 6.3.8) with CHILDREN (RFC 3348) and SPECIAL-USE attributes."""
        if not command.pattern:
            self._send(DataResponse(b'LIST (\\Noselect) "/" ""'))
            self._ok(command.tag, "List completed")
            return
        pattern = _decode_list_pattern(command.reference, command.pattern)
        mailboxes = await self.store.list_mailboxes(self._user_id)
        existing = {m.name: m for m in mailboxes}
        every = set(existing)
        for name in existing:
            every.update(names.parents(name))
        has_children = {parent for name in every for parent in names.parents(name)}
        for name in sorted(every):
            if not pattern.matches(name):
                continue
            attributes = [b"\\HasChildren" if name in has_children else b"\\HasNoChildren"]
            mailbox = existing.get(name)
            if mailbox is None:
                attributes.insert(0, b"\\Noselect")
            elif mailbox.special_use:
                attributes.append(mailbox.special_use.encode())
            self._send(self._list_line(b"LIST", attributes, name))
        await self._announce(allow_expunge=True)
        self._ok(command.tag, "List completed")

    async def _lsub(self, command: c.LsubCommand) -> None:
        """LSUB (RFC 3501 section 6.3.9): subscribed names that match the pattern.

        A pattern that ends in ``%`` also matches the levels above a subscribed
        name that are not subscribed themselves; those come with ``\\Noselect``.
        """
        if not command.pattern:
            self._send(DataResponse(b'LSUB (\\Noselect) "/" ""'))
            self._ok(command.tag, "Lsub completed")
            return
        pattern = _decode_list_pattern(command.reference, command.pattern)
        subscribed = set(await self.store.subscriptions(self._user_id))
        shown: dict[str, list[bytes]] = {}
        for name in subscribed:
            if pattern.matches(name):
                shown[name] = []
            if pattern.ends_with_percent:
                for parent in names.parents(name):
                    if parent not in subscribed and pattern.matches(parent):
                        shown.setdefault(parent, [b"\\Noselect"])
        for name in sorted(shown):
            self._send(self._list_line(b"LSUB", shown[name], name))
        self._ok(command.tag, "Lsub completed")

    @staticmethod
    def _list_line(kind: bytes, attributes: list[bytes], name: str) -> DataResponse:
        return DataResponse(
            kind + b" " + paren_list(attributes) + b' "/" ' + astring(mutf7.encode(name))
        )

    async def _status(self, command: c.StatusCommand) -> None:
        name = _decode_mailbox(command.mailbox)
        status = await self.store.mailbox_status(self._user_id, name)
        recent: list[int] = []
        if "RECENT" in command.items:
            recent = await self.store.claim_recent(status.mailbox, readonly=True)
        values = {
            "MESSAGES": status.messages,
            "RECENT": len(recent),
            "UIDNEXT": status.mailbox.uidnext,
            "UIDVALIDITY": status.mailbox.uidvalidity,
            "UNSEEN": status.unseen,
        }
        items = b" ".join(f"{item} {values[item]}".encode() for item in command.items)
        self._send(DataResponse(b"STATUS " + astring(mutf7.encode(name)) + b" (" + items + b")"))
        await self._announce(allow_expunge=True)
        self._ok(command.tag, "Status completed")

    # -- APPEND -------------------------------------------------------------------

    async def _append(self, command: c.AppendCommand) -> None:
        """APPEND (RFC 3501 section 6.3.11): the literal streams into the blob store."""
        tag = command.tag
        try:
            if command.size > self.settings.max_append_size:
                raise MessageTooLarge(self.settings.max_append_size)
            name = _decode_mailbox(command.mailbox)
            self.store.check_flags(_flag_names(command.flags))
            await self.store.get_mailbox(self._user_id, name)
        except LightMailError as error:
            if isinstance(error, MailboxNotFound):
                error = MailboxNotFound(error.name, try_create=True)
            self.receiver.reject_literal()
            APPENDS.labels(_append_outcome(error)).inc()
            self._send(reply_for_error(tag, error))
            return
        except Exception:
            # The literal is still owed: refuse it, or the receiver stays stuck on it.
            log.exception("imap %s: APPEND failed before its literal", self.conn.id)
            self.receiver.reject_literal()
            APPENDS.labels("error").inc()
            self._send(
                TaggedResponse(tag, Status.NO, "Internal error", ResponseCode(Code.SERVERBUG))
            )
            return
        if command.synchronizing:
            self._send(ContinuationResponse("Ready for literal"))
        self.receiver.accept_literal()
        await self.driver.flush()
        source = self._literal_chunks()
        what = f"imap {self.conn.id} APPEND by {self.user.address if self.user else '?'}"
        try:
            try:
                async with ingest_scanned(
                    self.store, self.ctx.scanner, self.ctx.antivirus, source, what
                ) as ingest:
                    result = await ingest.append(
                        self._user_id,
                        name,
                        flags=_flag_names(command.flags),
                        internaldate=command.date_time,
                    )
            except MessageRejected:
                APPENDS.labels("refused").inc()
                self._send(TaggedResponse(tag, Status.NO, "Message refused by content policy"))
                return
        except _LiteralAborted:
            APPENDS.labels("aborted").inc()
            return  # the receiver's event (BAD, or the end of the connection) was handled
        except LightMailError as error:
            if await self._drain_literal(source):
                APPENDS.labels(_append_outcome(error)).inc()
                self._send(reply_for_error(tag, error))
            else:
                APPENDS.labels("aborted").inc()
            return
        except (SessionEnd, StreamError):
            APPENDS.labels("aborted").inc()
            raise
        except Exception:
            log.exception("imap %s: APPEND failed", self.conn.id)
            if await self._drain_literal(source):
                APPENDS.labels("error").inc()
                self._send(
                    TaggedResponse(tag, Status.NO, "Internal error", ResponseCode(Code.SERVERBUG))
                )
            else:
                APPENDS.labels("aborted").inc()
            return
        if not self._append_ended:
            # The receiver reported a bad end of the command after the literal.
            APPENDS.labels("aborted").inc()
            return
        APPENDS.labels("appended").inc()
        await self._announce(allow_expunge=True)
        self._ok(tag, "Append completed", ResponseCode.appenduid(result.uidvalidity, [result.uid]))

    async def _literal_chunks(self) -> AsyncIterator[bytes]:
        self._append_ended = False
        while True:
            event = await self.driver.next_event()
            if isinstance(event, LiteralChunk):
                yield event.data
            elif isinstance(event, AppendEnd):
                self._append_ended = True
                return
            else:
                # The literal broke off (a BAD end, NUL in the message, the peer left).
                await self.driver.dispatch(event)
                raise _LiteralAborted

    async def _drain_literal(self, source: AsyncIterator[bytes]) -> bool:
        """Read and drop what is left of the literal; True when it ended normally."""
        try:
            async for _ in source:
                pass
        except _LiteralAborted:
            return False
        return self._append_ended

    # -- IDLE ---------------------------------------------------------------------

    async def _idle(self, command: c.IdleCommand) -> None:
        """IDLE (RFC 2177): changes are pushed as they happen until DONE."""
        await self._watch()
        self._send(ContinuationResponse("idling"))
        self.receiver.start_idle()
        await self._announce(allow_expunge=True, force=True)
        await self.driver.flush()
        subscription = self._subscription
        if subscription is None:
            raise AssertionError("_watch subscribed")
        while True:
            event = self.receiver.next_event()
            if isinstance(event, IdleDone):
                self._ok(command.tag, "Idle completed")
                return
            if event is not NEED_DATA:
                await self.driver.dispatch(event)  # a BadCommand: IDLE is over
                return
            read = asyncio.ensure_future(self.driver.read())
            change = asyncio.ensure_future(subscription.get())
            try:
                done, _ = await asyncio.wait({read, change}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (read, change):
                    if not task.done():
                        task.cancel()
            if change in done:
                await self._announce(allow_expunge=True, force=True)
                await self.driver.flush()
            if read in done:
                self.receiver.receive_data(read.result())

    # -- selected state -------------------------------------------------------------

    @property
    def _view(self) -> SelectedMailbox:
        if self.selected is None:
            raise AssertionError("the state table allows this only in the selected state")
        return self.selected

    def _may_expunge(self, command: c.Command) -> bool:
        """RFC 3501 7.4.1: no EXPUNGE while answering FETCH, STORE or SEARCH (UID ones may)."""
        if isinstance(command, c.FetchCommand | c.StoreCommand | c.SearchCommand):
            return command.uid
        return True

    async def _announce(self, *, allow_expunge: bool, force: bool = False) -> None:
        """Tell the client what changed in its selected mailbox since it last heard.

        Looks at the store only when a change event for the mailbox arrived
        (or ``force``: NOOP, IDLE), and then only if HIGHESTMODSEQ moved. If the
        database is unavailable the changes wait for the next command; the
        command itself has done its work and is answered as such.
        """
        events = self._subscription.drain() if self._subscription is not None else []
        view = self.selected
        if view is None:
            return
        if any(event.mailbox_id == view.mailbox_id for event in events):
            self._changed = True
        if force or self._changed:
            try:
                if await self._catch_up(view, allow_expunge=allow_expunge):
                    return
            except TemporaryFailure as error:
                log.info("imap %s: changes not announced for now: %s", self.conn.id, error)
                return
        if allow_expunge and view.has_pending_expunges:
            self._send_updates(view.release_expunges())

    async def _catch_up(self, view: SelectedMailbox, *, allow_expunge: bool) -> bool:
        """Read the selected mailbox and send what changed; False if nothing did."""
        try:
            mailbox = await self.store.mailbox_by_id(self._user_id, view.mailbox_id)
        except MailboxNotFound:  # deleted by another session: all of it is gone
            self._changed = False
            self._send_updates(view.update((), allow_expunge=allow_expunge))
            return True
        if mailbox.highestmodseq == self._modseq:
            self._changed = False
            return False
        infos = await self.store.list_messages(mailbox)
        recent: list[int] = []
        if not view.readonly and infos and infos[-1].uid > view.largest_uid:
            recent = await self.store.claim_recent(mailbox)
        self._modseq = mailbox.highestmodseq
        self._changed = False
        updates = view.update(
            (Snapshot(i.uid, i.flags.names()) for i in infos),
            allow_expunge=allow_expunge,
            recent=recent,
            keywords=mailbox.keywords,
            keyword_room=self.store.may_create_keywords(mailbox),
        )
        self._send_updates(updates)
        return True

    async def _announce_new_keywords(self, view: SelectedMailbox) -> None:
        """FLAGS and PERMANENTFLAGS again when flags this session just stored (its
        own, and any another session set on the same messages) hold a keyword the
        client was not told of: before a FETCH shows it (RFC 3501 7.2.6)."""
        if not view.has_unannounced_keywords:
            return
        mailbox = await self.store.mailbox_by_id(self._user_id, view.mailbox_id)
        if view.announce_keywords(mailbox.keywords, room=self.store.may_create_keywords(mailbox)):
            self._send_keywords(view)

    def _send_keywords(self, view: SelectedMailbox) -> None:
        """FLAGS and PERMANENTFLAGS with the keywords the view announces (RFC 3501
        7.2.6 and 7.1): ``\\*`` only while the mailbox may define more of them."""
        flags = [*SYSTEM_FLAGS, *_flag_bytes(view.keywords)]
        self._send(flags_response(flags))
        permanent: list[bytes] = []
        if not view.readonly:
            permanent = [*flags, b"\\*"] if view.keyword_room else flags
        self._send(
            UntaggedResponse(Status.OK, "Flags permitted", ResponseCode.permanentflags(permanent))
        )

    def _send_updates(self, updates: Updates) -> None:
        if updates.keywords is not None:
            self._send_keywords(self._view)
        for seq in updates.expunged:
            self._send(expunge_response(seq))
        for seq, uid, _ in updates.flags:
            self._send(fetch_response(seq, [(b"UID", uid), (b"FLAGS", Raw(self._flag_list(uid)))]))
        if updates.exists is not None:
            self._send(exists_response(updates.exists))
        if updates.recent is not None:
            self._send(recent_response(updates.recent))

    def _flag_list(self, uid: int) -> bytes:
        """A message's flags as FETCH shows them: ``\\Recent`` is this session's own
        (RFC 3501 sections 2.3.2 and 9, ``flag-fetch``)."""
        flags = _flag_bytes(self._view.flags_of(uid))
        if self._view.is_recent(uid):
            flags.append(b"\\Recent")
        return flag_list(flags)

    def _resolve(self, sequence_set: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) of the messages a set names, in sequence order.

        A UID set silently skips UIDs that do not exist (RFC 3501 6.4.8). A
        message sequence number past the end is the client's error (BAD),
        except through ``*``, which stands for the last message (none in an
        empty mailbox).
        """
        view = self._view
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
                raise _BadSequence
            pairs.update((seq, view.uid_of(seq)) for seq in range(low, high + 1))
        return sorted(pairs)

    async def _close(self, command: c.CloseCommand) -> None:
        """CLOSE (RFC 3501 6.4.2): expunge silently unless read-only, then deselect."""
        if not self._view.readonly:
            mailbox = await self.store.mailbox_by_id(self._user_id, self._view.mailbox_id)
            await self.store.expunge(self._user_id, mailbox)
        self._deselect()
        self._ok(command.tag, "Close completed")

    async def _unselect(self, command: c.UnselectCommand) -> None:
        self._deselect()
        self._ok(command.tag, "Unselect completed")

    async def _expunge(self, command: c.ExpungeCommand | c.UidExpungeCommand) -> None:
        """EXPUNGE (RFC 3501 6.4.3) and UID EXPUNGE (RFC 4315 2.1)."""
        if self._view.readonly:
            self._send(
                TaggedResponse(
                    command.tag, Status.NO, "Mailbox is read-only", ResponseCode(Code.READ_ONLY)
                )
            )
            return
        uids = None
        if isinstance(command, c.UidExpungeCommand):
            uids = [uid for _, uid in self._resolve(command.sequence_set, uid=True)]
        mailbox = await self.store.mailbox_by_id(self._user_id, self._view.mailbox_id)
        await self.store.expunge(self._user_id, mailbox, uids)
        await self._announce(allow_expunge=True, force=True)
        self._ok(command.tag, "Expunge completed")

    async def _store(self, command: c.StoreCommand) -> None:
        """STORE (RFC 3501 6.4.6): the new flags of every named message, unless .SILENT."""
        view = self._view
        try:
            targets = self._resolve(command.sequence_set, uid=command.uid)
        except _BadSequence:
            self._send(TaggedResponse(command.tag, Status.BAD, "Invalid message sequence number"))
            return
        if view.readonly:
            self._send(
                TaggedResponse(
                    command.tag, Status.NO, "Mailbox is read-only", ResponseCode(Code.READ_ONLY)
                )
            )
            return
        live = [(seq, uid) for seq, uid in targets if not view.is_expunged(uid)]
        mailbox = await self.store.mailbox_by_id(self._user_id, view.mailbox_id)
        changed = await self.store.store_flags(
            self._user_id,
            mailbox,
            [uid for _, uid in live],
            _STORE_MODES[command.mode],
            _flag_names(command.flags),
        )
        for info in changed:
            view.set_flags(info.uid, info.flags.names())
        await self._announce_new_keywords(view)
        if not command.silent:
            for seq, uid in live:
                items: list[tuple[bytes, Any]] = [(b"FLAGS", Raw(self._flag_list(uid)))]
                if command.uid:
                    items.insert(0, (b"UID", uid))
                self._send(fetch_response(seq, items))
        await self._announce(allow_expunge=self._may_expunge(command))
        if len(live) < len(targets):
            self._send(
                TaggedResponse(
                    command.tag,
                    Status.NO,
                    "Some messages were expunged",
                    ResponseCode(Code.EXPUNGEISSUED),
                )
            )
            return
        self._ok(command.tag, "Store completed")

    async def _copy(self, command: c.CopyCommand | c.MoveCommand) -> None:
        """COPY (RFC 3501 6.4.7, COPYUID of RFC 4315) and MOVE (RFC 6851)."""
        move = isinstance(command, c.MoveCommand)
        view = self._view
        try:
            targets = self._resolve(command.sequence_set, uid=command.uid)
        except _BadSequence:
            self._send(TaggedResponse(command.tag, Status.BAD, "Invalid message sequence number"))
            return
        if move and view.readonly:
            self._send(
                TaggedResponse(
                    command.tag, Status.NO, "Mailbox is read-only", ResponseCode(Code.READ_ONLY)
                )
            )
            return
        destination = _decode_mailbox(command.mailbox)
        mailbox = await self.store.mailbox_by_id(self._user_id, view.mailbox_id)
        uids = [uid for _, uid in targets if not view.is_expunged(uid)]
        operation = self.store.move if move else self.store.copy
        result = await operation(self._user_id, mailbox, uids, destination)
        code = None
        if result.source_uids:
            code = ResponseCode.copyuid(result.uidvalidity, result.source_uids, result.dest_uids)
        if move:
            if code is not None:
                self._send(UntaggedResponse(Status.OK, "Moved", code))
            await self._announce(allow_expunge=True, force=True)
            self._ok(command.tag, "Move completed")
        else:
            await self._announce(allow_expunge=True)
            self._ok(command.tag, "Copy completed", code)

    # -- SEARCH ---------------------------------------------------------------------

    async def _search(self, command: c.SearchCommand) -> None:
        """SEARCH and UID SEARCH (RFC 3501 6.4.4)."""
        if command.charset not in (None, *_CHARSETS):
            self._send(
                TaggedResponse(
                    command.tag,
                    Status.NO,
                    "Unsupported charset",
                    ResponseCode.badcharset(_CHARSETS),
                )
            )
            return
        view = self._view
        mailbox = await self.store.mailbox_by_id(self._user_id, view.mailbox_id)
        needles = search.text_needles(command.key)
        matched: list[int] = []
        live = [(seq, uid) for seq, uid in enumerate(view.uids, 1) if not view.is_expunged(uid)]
        turn = TimeSlice()  # other sessions run in between (issue #14)
        for start in range(0, len(live), _FETCH_BATCH):
            batch = live[start : start + _FETCH_BATCH]
            uids = [uid for _, uid in batch]
            metas = {meta.info.uid: meta for meta in await self.store.fetch_meta(mailbox, uids)}
            for seq, uid in batch:
                meta = metas.get(uid)
                if meta is None:
                    continue
                found: frozenset[tuple[bytes, bool]] = frozenset()
                if needles:
                    found = await self._search_text(meta, needles, turn)
                message = search.SearchMessage(
                    seq=seq,
                    uid=uid,
                    flags=view.flags_of(uid),
                    recent=view.is_recent(uid),
                    size=meta.info.size,
                    internaldate=meta.info.internaldate,
                    header=meta.header,
                    sent_date=_sent_date(meta.envelope.date),
                )
                if search.matches(
                    command.key,
                    message,
                    largest_seq=view.exists,
                    largest_uid=view.largest_uid,
                    found=found,
                ):
                    matched.append(uid if command.uid else seq)
                await turn.pause()
        self._send(DataResponse(b" ".join([b"SEARCH", *(str(n).encode() for n in matched)])))
        await self._announce(allow_expunge=self._may_expunge(command))
        self._ok(command.tag, "Search completed")

    async def _search_text(
        self, meta: MessageMeta, needles: frozenset[tuple[bytes, bool]], turn: TimeSlice
    ) -> frozenset[tuple[bytes, bool]]:
        """BODY/TEXT needles found in the parts' MIME headers and decoded text, read
        range by range from the blob store (the top-level header is matched from
        the cache by ``search.matches``). Scanned in pieces of ``_SCAN_PIECE``
        octets, giving way to other sessions in between."""
        scan = search.TextScan(needles, body_start=0)
        for segment in search.text_segments(meta.body):
            part = segment.part
            decoder = (
                None if part is None else search.PartDecoder(part.encoding, part.param("CHARSET"))
            )
            async for chunk in self.store.read_message(meta.info, segment.start, segment.end):
                data = chunk if decoder is None else decoder.feed(chunk)
                for at in range(0, len(data), _SCAN_PIECE):
                    scan.feed(data[at : at + _SCAN_PIECE])
                    if scan.done:
                        return scan.found()
                    await turn.pause()
            if decoder is not None:
                scan.feed(decoder.close())
            scan.feed(b"\n")  # no match across two segments
        return scan.found()

    # -- FETCH ----------------------------------------------------------------------

    async def _fetch(self, command: c.FetchCommand) -> None:
        """FETCH and UID FETCH (RFC 3501 6.4.5): metadata from SQL, bodies streamed."""
        view = self._view
        try:
            targets = self._resolve(command.sequence_set, uid=command.uid)
        except _BadSequence:
            self._send(TaggedResponse(command.tag, Status.BAD, "Invalid message sequence number"))
            return
        attributes = list(command.attributes)
        if command.uid and FetchItem.UID not in attributes:
            attributes.insert(0, FetchItem.UID)
        needs_meta = any(
            isinstance(a, BodySection)
            or a
            in (
                FetchItem.ENVELOPE,
                FetchItem.BODYSTRUCTURE,
                FetchItem.BODY,
                FetchItem.RFC822,
                FetchItem.RFC822_HEADER,
                FetchItem.RFC822_TEXT,
            )
            for a in attributes
        )
        sets_seen = not view.readonly and any(
            (isinstance(a, BodySection) and not a.peek)
            or a in (FetchItem.RFC822, FetchItem.RFC822_TEXT)
            for a in attributes
        )
        mailbox = await self.store.mailbox_by_id(self._user_id, view.mailbox_id)
        live = [(seq, uid) for seq, uid in targets if not view.is_expunged(uid)]
        seen_now: set[int] = set()
        if sets_seen:
            unseen = [uid for _, uid in live if "\\Seen" not in view.flags_of(uid)]
            if unseen:
                for changed in await self.store.store_flags(
                    self._user_id, mailbox, unseen, StoreMode.ADD, ["\\Seen"]
                ):
                    view.set_flags(changed.uid, changed.flags.names())
                    seen_now.add(changed.uid)
                await self._announce_new_keywords(view)
        needs_info = needs_meta or any(
            a in (FetchItem.RFC822_SIZE, FetchItem.INTERNALDATE) for a in attributes
        )
        missing = len(live) < len(targets)
        turn = TimeSlice()  # other sessions run in between (issue #14)
        unreadable = False
        for start in range(0, len(live), _FETCH_BATCH):
            batch = live[start : start + _FETCH_BATCH]
            uids = [uid for _, uid in batch]
            metas: dict[int, MessageMeta] = {}
            infos: dict[int, MessageInfo] = {}
            if needs_meta:
                metas = {m.info.uid: m for m in await self.store.fetch_meta(mailbox, uids)}
                infos = {uid: meta.info for uid, meta in metas.items()}
            elif needs_info:
                infos = {i.uid: i for i in await self.store.fetch_infos(mailbox, uids)}
            for seq, uid in batch:
                info = infos.get(uid)
                if needs_info and info is None:  # expunged by another session meanwhile
                    missing = True
                    continue
                try:
                    await self._fetch_one(
                        seq, uid, info, metas.get(uid), attributes, uid in seen_now
                    )
                except BlobNotFound as error:
                    # The rest of the range is still answered (RFC 3501 6.4.5: NO at the end).
                    unreadable = True
                    BLOBS_MISSING.inc()
                    log.error(
                        "imap %s: message UID %d in mailbox %r (id %d) of %s has no blob %s",
                        self.conn.id,
                        uid,
                        mailbox.name,
                        mailbox.id,
                        self.user.address if self.user else "?",
                        error.key,
                    )
                await turn.pause()
        await self._announce(allow_expunge=self._may_expunge(command))
        if unreadable:
            self._send(
                TaggedResponse(
                    command.tag,
                    Status.NO,
                    "Some messages could not be read",
                    ResponseCode(Code.SERVERBUG),
                )
            )
            return
        if missing:
            self._send(
                TaggedResponse(
                    command.tag,
                    Status.NO,
                    "Some messages were expunged",
                    ResponseCode(Code.EXPUNGEISSUED),
                )
            )
            return
        self._ok(command.tag, "Fetch completed")

    async def _fetch_one(
        self,
        seq: int,
        uid: int,
        info: MessageInfo | None,
        meta: MessageMeta | None,
        attributes: Sequence[FetchItem | BodySection],
        seen_now: bool,
    ) -> None:
        """Write one FETCH response; large body sections stream from the blob store.

        ``info`` and ``meta`` are None when no attribute asked for them. Every
        blob read starts before the response does, so a missing blob
        (:class:`BlobNotFound`) leaves nothing of it written.
        """
        items: list[bytes | _Streamed] = []
        for attribute in attributes:
            if isinstance(attribute, BodySection):
                items.append(await self._section(attribute, attribute.response_name, meta))
                continue
            match attribute:
                case FetchItem.FLAGS:
                    items.append(b"FLAGS " + self._flag_list(uid))
                case FetchItem.UID:
                    items.append(b"UID " + str(uid).encode())
                case FetchItem.INTERNALDATE:
                    items.append(b"INTERNALDATE " + _internaldate(_need(info).internaldate))
                case FetchItem.RFC822_SIZE:
                    items.append(b"RFC822.SIZE " + str(_need(info).size).encode())
                case FetchItem.ENVELOPE:
                    items.append(b"ENVELOPE " + fetch.envelope_bytes(_need(meta).envelope))
                case FetchItem.BODYSTRUCTURE:
                    structure = fetch.body_structure_bytes(_need(meta).body, extensible=True)
                    items.append(b"BODYSTRUCTURE " + structure)
                case FetchItem.BODY:
                    structure = fetch.body_structure_bytes(_need(meta).body, extensible=False)
                    items.append(b"BODY " + structure)
                case FetchItem.RFC822 | FetchItem.RFC822_HEADER | FetchItem.RFC822_TEXT:
                    rfc822 = _RFC822_SECTIONS[attribute]
                    items.append(await self._section(rfc822, attribute.response_name, meta))
        if seen_now and FetchItem.FLAGS not in attributes:
            items.append(b"FLAGS " + self._flag_list(uid))
        streams: dict[int, tuple[bytes, AsyncIterator[bytes]]] = {}
        for index, item in enumerate(items):
            if isinstance(item, _Streamed):
                chunks = aiter(self.store.read_message(_need(meta).info, item.start, item.end))
                streams[index] = (await anext(chunks, b""), chunks)
        self.driver.send(b"* " + str(seq).encode() + b" FETCH (")
        for index, item in enumerate(items):
            separator = b" " if index else b""
            if isinstance(item, bytes):
                self.driver.send(separator + item)
                continue
            size = item.end - item.start
            self.driver.send(separator + item.name + b" {" + str(size).encode() + b"}\r\n")
            await self.driver.flush()
            first, rest = streams[index]
            await self.conn.write(literal_octets(first))
            async for chunk in rest:
                await self.conn.write(literal_octets(chunk))
        self.driver.send(b")\r\n")

    async def _section(
        self, section: BodySection, name: bytes, meta: MessageMeta | None
    ) -> bytes | _Streamed:
        """``BODY[section]<partial>``: from the cached header when it holds the bytes,
        inline when small, else streamed from the blob store.

        Always a literal, even ``{0}``: the grammar allows a quoted string, but
        curl and other clients parse only literals (Dovecot and Cyrus send only
        literals). NUL goes out as 0x80 (``literal``, ``literal_octets``).
        """
        meta = _need(meta)
        where = fetch.section_range(meta.body, section)
        if where is None:
            return name + b" " + literal(b"")
        if where.fields is not None:
            header = await self._read_range(meta, where.start, where.end)
            data = fetch.filter_header(header, where.fields, exclude=where.exclude)
            offset, count = fetch.apply_partial(len(data), section.partial)
            return name + b" " + literal(data[offset : offset + count])
        offset, count = fetch.apply_partial(where.end - where.start, section.partial)
        start, end = where.start + offset, where.start + offset + count
        if count == 0:
            return name + b" " + literal(b"")
        if count <= _INLINE_LIMIT or _cached(meta, end):
            return name + b" " + literal(await self._read_range(meta, start, end))
        return _Streamed(name, start, end)

    async def _read_range(self, meta: MessageMeta, start: int, end: int) -> bytes:
        if _cached(meta, end):
            return meta.header[start:end]
        chunks = self.store.read_message(meta.info, start, end)
        return b"".join([chunk async for chunk in chunks])


@dataclass(frozen=True, slots=True)
class _Streamed:
    """A FETCH item sent as a literal read straight from the blob store."""

    name: bytes
    start: int
    end: int


_INLINE_LIMIT = 16 * 1024
_FETCH_BATCH = 500  # messages whose cached parse one query reads
_SCAN_PIECE = 8 * 1024  # octets BODY/TEXT search scans between two chances to give way
_RFC822_SECTIONS = {
    FetchItem.RFC822: BodySection(),
    FetchItem.RFC822_HEADER: BodySection(peek=True, text=SectionText.HEADER),
    FetchItem.RFC822_TEXT: BodySection(text=SectionText.TEXT),
}


def _sent_date(value: str | None) -> date | None:
    """The day of the Date: header in its own time zone (RFC 3501 SENTON and friends)."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).date()
    except (TypeError, ValueError, IndexError):
        return None


_T = TypeVar("_T")


def _need(value: _T | None) -> _T:
    """FETCH read what its attributes need before rendering; None here is our bug."""
    if value is None:
        raise AssertionError("FETCH did not read what an attribute needs")
    return value


def _cached(meta: MessageMeta, end: int) -> bool:
    """Whether bytes up to ``end`` lie in the complete header cached in SQL."""
    return end <= len(meta.header) == meta.body.body_start


_VERBS: dict[type[Any], str] = {
    c.CapabilityCommand: "capability",
    c.NoopCommand: "noop",
    c.LogoutCommand: "logout",
    c.IdCommand: "id",
    c.EnableCommand: "enable",
    c.StartTlsCommand: "starttls",
    c.AuthenticateCommand: "authenticate",
    c.LoginCommand: "login",
    c.SelectCommand: "select",
    c.CreateCommand: "create",
    c.DeleteCommand: "delete",
    c.RenameCommand: "rename",
    c.SubscribeCommand: "subscribe",
    c.UnsubscribeCommand: "unsubscribe",
    c.ListCommand: "list",
    c.LsubCommand: "lsub",
    c.StatusCommand: "status",
    c.AppendCommand: "append",
    c.IdleCommand: "idle",
    c.NamespaceCommand: "namespace",
    c.CheckCommand: "check",
    c.CloseCommand: "close",
    c.UnselectCommand: "unselect",
    c.ExpungeCommand: "expunge",
    c.UidExpungeCommand: "uid_expunge",
    c.SearchCommand: "search",
    c.FetchCommand: "fetch",
    c.StoreCommand: "store",
    c.CopyCommand: "copy",
    c.MoveCommand: "move",
}


def _bye(text: str) -> bytes:
    """The untagged BYE that ends a session (RFC 3501 section 7.1.5)."""
    return UntaggedResponse(Status.BYE, text).to_bytes()


# What the driver says when it ends a session (RFC 3501 section 7.1.5).
_GOODBYES = {
    Goodbye.DEADLINE: _bye("Autologout; took too long to log in"),
    Goodbye.IDLE: _bye("Autologout; idle for too long"),
    Goodbye.SHUTDOWN: _bye("Server shutting down"),
}


def _command_name(command: c.Command) -> str:
    """The ``command`` label of the metrics: a fixed set of lower-case verbs."""
    match command:
        case c.SelectCommand(readonly=True):
            return "examine"
        case (
            c.SearchCommand(uid=True)
            | c.FetchCommand(uid=True)
            | c.StoreCommand(uid=True)
            | c.CopyCommand(uid=True)
            | c.MoveCommand(uid=True)
        ):
            return f"uid_{_VERBS[type(command)]}"
    return _VERBS.get(type(command), "other")


def _append_outcome(error: LightMailError) -> str:
    """The ``lightmail_appends_total`` outcome of an APPEND answered NO for ``error``."""
    return "deferred" if isinstance(error, TemporaryFailure) else "refused"


class _BadSequence(Exception):
    """A message sequence number beyond the mailbox: the client's error (BAD)."""


class _LiteralAborted(Exception):
    """APPEND's literal did not complete; the receiver's event was already answered."""
