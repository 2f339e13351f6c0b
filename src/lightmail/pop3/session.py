"""One POP3 connection (RFC 1939, with CAPA and RESP-CODES of RFC 2449, SASL of RFC 5034).

The maildrop is the user's INBOX as it was at login: message numbers, sizes
and UIDs are fixed for the session. UIDL values are ``<uidvalidity>.<uid>``,
stable across sessions and never reused. POP3 is read-only unless
``[pop3] allow_delete``: then DELE marks messages and only QUIT (in the
UPDATE state) soft-deletes them, as IMAP's EXPUNGE does; a dropped
connection applies nothing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lightmail import __version__
from lightmail.accounts.service import Accounts, User
from lightmail.auth.policy import LoginPolicy
from lightmail.auth.sasl import AuthzidRefused, SaslError, SaslExchange
from lightmail.config import Pop3Settings
from lightmail.errors import AuthenticationFailed, LightMailError, TemporaryFailure
from lightmail.mailstore.readahead import ReadAhead
from lightmail.mailstore.store import Mailbox, MailStore, MessageInfo
from lightmail.net.driver import Allowance, Driver, Goodbye, SessionEnd
from lightmail.net.limits import SessionLimiter
from lightmail.net.stream import Connection, StreamError
from lightmail.pop3.body import DotStuffer, TopFilter
from lightmail.pop3.wire import (
    ApopCommand,
    AuthCommand,
    BadCommand,
    CapaCommand,
    DeleCommand,
    Event,
    ListCommand,
    NoopCommand,
    PassCommand,
    Pop3Receiver,
    Pop3Reply,
    QuitCommand,
    RetrCommand,
    RsetCommand,
    SaslResponse,
    StatCommand,
    StlsCommand,
    TopCommand,
    UidlCommand,
    UserCommand,
    continuation,
    err,
    ok,
)
from lightmail.storage.blobs import BlobNotFound

log = logging.getLogger(__name__)


class State(enum.Enum):
    """RFC 1939 section 3 (UPDATE is QUIT from TRANSACTION)."""

    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"


@dataclass(frozen=True, slots=True)
class Pop3Context:
    settings: Pop3Settings
    store: MailStore
    accounts: Accounts
    tls: Any  # ssl.SSLContext | None
    per_user: SessionLimiter  # [pop3] max_connections_per_user
    hostname: str


# The ``command`` label of the metrics; anything else (BadCommand) is "other".
_VERBS: dict[type[Any], str] = {
    CapaCommand: "capa",
    QuitCommand: "quit",
    NoopCommand: "noop",
    StlsCommand: "stls",
    UserCommand: "user",
    PassCommand: "pass",
    AuthCommand: "auth",
    ApopCommand: "apop",
    StatCommand: "stat",
    ListCommand: "list",
    UidlCommand: "uidl",
    RetrCommand: "retr",
    TopCommand: "top",
    DeleCommand: "dele",
    RsetCommand: "rset",
}


def _size(info: MessageInfo) -> str:
    return str(info.size_crlf)


# What the driver says when it ends a session.
_GOODBYES = {
    Goodbye.DEADLINE: err("Autologout; took too long to log in"),
    Goodbye.IDLE: err("Autologout; idle for too long"),
    Goodbye.SHUTDOWN: err("Server shutting down", "SYS/TEMP"),
}


class Pop3Session:
    def __init__(self, context: Pop3Context, connection: Connection) -> None:
        self.ctx = context
        self.settings = context.settings
        self.conn = connection
        self.receiver = Pop3Receiver(max_line=self.settings.max_line_length)
        self.driver = Driver("pop3", connection, self.receiver, self)
        self.login = LoginPolicy(
            connection, self.settings, goodbye=err("Too many failed logins", "AUTH")
        )
        self.state = State.AUTHORIZATION
        self.user_name: str | None = None
        self.user: User | None = None
        self.inbox: Mailbox | None = None
        self.messages: list[MessageInfo] = []
        self.deleted: set[int] = set()  # message numbers marked by DELE
        self._ahead = ReadAhead(context.store)  # RETR reads the next ones early
        self._bad = Allowance(self.settings.max_bad_commands, err("Too many invalid commands"))
        self._before_login = Allowance(
            self.settings.max_commands_before_login, err("Too many commands without logging in")
        )

    # -- what the driver asks -------------------------------------------------------

    async def run(self) -> None:
        try:
            await self.driver.run(ok(f"LightMail POP3 ready on {self.ctx.hostname}"))
        finally:
            self._ahead.close()
            if self.user is not None:
                await self.ctx.per_user.leave(self.user.id)

    def read_limits(self) -> tuple[float, float | None]:
        return self.login.read_limits(
            self.state is not State.AUTHORIZATION, self.settings.idle_timeout
        )

    def goodbye(self, reason: Goodbye) -> bytes:
        return _GOODBYES[reason]

    def verb(self, event: Event) -> str:
        return _VERBS.get(type(event), "other")

    async def handle(self, event: Event) -> None:
        try:
            await self._dispatch(event)
        except TemporaryFailure:
            log.warning("pop3 %s: temporary failure", self.conn.id, exc_info=True)
            self._send(err("Temporary failure, try again later", "SYS/TEMP"))
        except (SessionEnd, StreamError):
            raise
        except Exception:
            log.exception("pop3 %s: command failed", self.conn.id)
            self._send(err("Internal error, try again later", "SYS/TEMP"))

    def _send(self, data: bytes) -> None:
        self.driver.send(data)

    async def _dispatch(self, event: Event) -> None:
        transaction = self.state is State.TRANSACTION
        if not transaction and not isinstance(event, BadCommand):
            self._before_login.spend()
        match event:
            case BadCommand():
                await self._bad_command(event.text)
            case CapaCommand():
                self._capa()
            case QuitCommand():
                await self._quit()
            case NoopCommand() if transaction:
                self._send(ok(""))
            case StlsCommand() if not transaction:
                await self._stls()
            case UserCommand() if not transaction:
                self._user(event)
            case PassCommand() if not transaction:
                await self._pass(event)
            case AuthCommand() if not transaction:
                await self._auth(event)
            case ApopCommand():
                self._send(err("APOP is not offered; use USER/PASS or AUTH PLAIN"))
            case StatCommand() if transaction:
                live = self._live()
                self._send(ok(f"{len(live)} {sum(m.size_crlf for _, m in live)}"))
            case ListCommand() if transaction:
                self._listing(event.msg, f"{len(self._live())} messages", _size)
            case UidlCommand() if transaction:
                self._listing(event.msg, "unique-id listing follows", self._uid)
            case RetrCommand() if transaction:
                await self._retr(event.msg, None)
            case TopCommand() if transaction:
                await self._retr(event.msg, event.lines)
            case DeleCommand() if transaction:
                self._dele(event)
            case RsetCommand() if transaction:
                self.deleted.clear()
                self._send(ok(f"maildrop has {len(self.messages)} messages"))
            case SaslResponse():
                raise AssertionError("SASL responses arrive only inside AUTH")
            case _:
                await self._bad_command(f"command not valid in the {self.state.value} state")

    async def _bad_command(self, text: str) -> None:
        self._send(err(text))
        self._bad.spend_last()

    # -- AUTHORIZATION ---------------------------------------------------------------

    def _capa(self) -> None:
        lines = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.login.plaintext_ok:
            lines += ["USER", "SASL PLAIN"]
        if self.ctx.tls is not None and not self.conn.is_tls and self.state is State.AUTHORIZATION:
            lines.append("STLS")
        lines.append(f"IMPLEMENTATION LightMail {__version__}")
        self._send(Pop3Reply.multiline("Capability list follows", lines))

    async def _stls(self) -> None:
        if self.ctx.tls is None or self.conn.is_tls:
            self._send(err("TLS is not available here"))
            return
        self._send(ok("Begin TLS negotiation"))
        await self.driver.start_tls(self.ctx.tls)

    def _user(self, command: UserCommand) -> None:
        if not self.login.plaintext_ok:
            self._send(err("Plaintext login needs TLS: use STLS", "AUTH"))
            return
        self.user_name = command.name
        self._send(ok("Send PASS"))  # the same for every name: no probing for addresses

    async def _pass(self, command: PassCommand) -> None:
        if self.user_name is None:
            await self._bad_command("send USER first")
            return
        name, self.user_name = self.user_name, None
        await self._login(name, command.password)

    async def _auth(self, command: AuthCommand) -> None:
        if command.mechanism is None:
            self._send(Pop3Reply.multiline("Supported mechanisms follow", ["PLAIN"]))
            return
        try:
            exchange = SaslExchange(command.mechanism, offered=("PLAIN",))
        except SaslError:
            self._send(err("Unsupported mechanism; use PLAIN"))
            return
        if not self.login.plaintext_ok:
            self._send(err("Plaintext login needs TLS: use STLS", "AUTH"))
            return
        response = command.initial_response
        if response is None:
            self._send(continuation(exchange.challenge()))
            self.receiver.expect_sasl_response()
            event = await self.driver.next_event()
            if not isinstance(event, SaslResponse):
                await self.driver.dispatch(event)
                return
            if event.cancelled:
                self._send(err("Authentication cancelled"))
                return
            response = event.data
        try:
            credentials = exchange.respond(response)
        except AuthzidRefused:
            self._send(err("Authorization as another user is not allowed", "AUTH"))
            self.login.count_failure()
            return
        except SaslError:
            self._send(err("Invalid PLAIN credentials", "AUTH"))
            self.login.count_failure()
            return
        if credentials is None:
            raise AssertionError("PLAIN completes with one response")
        await self._login(credentials.username, credentials.password)

    async def _login(self, name: str, password: str) -> None:
        try:
            user = await self.ctx.accounts.authenticate(name, password, self.conn.peer_ip)
        except AuthenticationFailed:
            log.info("pop3 %s: failed login for %r from %s", self.conn.id, name, self.conn.peer)
            self._send(err("Authentication failed", "AUTH"))
            self.login.count_failure()
            return
        if not await self.ctx.per_user.admit(user.id):
            self._send(err("Too many connections for this user", "IN-USE"))
            return
        try:
            inbox = await self.ctx.store.get_mailbox(user.id, "INBOX")
            self.messages = await self.ctx.store.list_messages(inbox)
        except BaseException:
            await self.ctx.per_user.leave(user.id)
            raise
        self.user, self.inbox = user, inbox  # run() releases the per-user count at the end
        self.state = State.TRANSACTION
        log.info("pop3 %s: %s logged in from %s", self.conn.id, user.address, self.conn.peer)
        self._send(ok(f"{user.address} has {len(self.messages)} messages"))

    # -- TRANSACTION -----------------------------------------------------------------

    def _live(self) -> list[tuple[int, MessageInfo]]:
        return [(n, m) for n, m in enumerate(self.messages, 1) if n not in self.deleted]

    def _message(self, number: int) -> MessageInfo | None:
        if 1 <= number <= len(self.messages) and number not in self.deleted:
            return self.messages[number - 1]
        self._send(err(f"no message {number}"))
        return None

    def _following(self, number: int) -> Iterator[MessageInfo]:
        """The live messages after message ``number``, in order, lazily."""
        return (
            self.messages[index]
            for index in range(number, len(self.messages))
            if index + 1 not in self.deleted
        )

    def _uid(self, info: MessageInfo) -> str:
        assert self.inbox is not None  # noqa: S101 - TRANSACTION has an inbox
        return f"{self.inbox.uidvalidity}.{info.uid}"

    def _listing(self, msg: int | None, text: str, value: Callable[[MessageInfo], str]) -> None:
        """LIST and UIDL: ``msg value`` for one message, else ``text`` and a line per live one."""
        if msg is None:
            self._send(Pop3Reply.multiline(text, [f"{n} {value(m)}" for n, m in self._live()]))
            return
        info = self._message(msg)
        if info is not None:
            self._send(ok(f"{msg} {value(info)}"))

    async def _retr(self, number: int, top: int | None) -> None:
        """RETR and TOP stream the blob, byte-stuffed (RFC 1939 section 3).

        The first chunk is read before ``+OK`` is queued: a message that cannot
        be read gets ``-ERR``. A read that fails after ``+OK`` went out ends the
        connection, since nothing sent then could end the multi-line reply
        truthfully. The ``+OK`` line, a small message and its final ``.`` go out
        in one write.
        """
        info = self._message(number)
        if info is None:
            return
        if top is None:
            chunks = aiter(self._ahead.read(info, self._following(number)))
        else:
            chunks = aiter(self.ctx.store.read_message(info))
        first = await anext(chunks, b"")
        self._send(ok(f"{info.size_crlf} octets" if top is None else "top of message follows"))
        try:
            await self._stream(
                first,
                chunks,
                TopFilter(top) if top is not None else None,
                DotStuffer(bare_lf=info.size_crlf != info.size),
            )
        except (TemporaryFailure, BlobNotFound) as error:
            log.warning("pop3 %s: RETR %d failed after +OK: %s", self.conn.id, number, error)
            raise SessionEnd from error

    async def _stream(
        self,
        chunk: bytes,
        rest: AsyncIterator[bytes],
        top_filter: TopFilter | None,
        stuffer: DotStuffer,
    ) -> None:
        """Queue ``chunk`` and ``rest`` dot-stuffed, each flushed once the next is read."""
        queued = False
        while True:
            if top_filter is not None:
                chunk = top_filter.feed(chunk)
            if chunk:
                if queued:
                    await self.driver.flush()
                self._send(stuffer.feed(chunk))
                queued = True
            if top_filter is not None and top_filter.done:
                break
            next_chunk = await anext(rest, None)
            if next_chunk is None:
                break
            chunk = next_chunk
        self._send(stuffer.close())

    def _dele(self, command: DeleCommand) -> None:
        if not self.settings.allow_delete:
            self._send(
                err("This mailbox is read-only over POP3; delete mail with IMAP", "SYS/PERM")
            )
            return
        if self._message(command.msg) is not None:
            self.deleted.add(command.msg)
            self._send(ok(f"message {command.msg} deleted"))

    async def _quit(self) -> None:
        """QUIT: in TRANSACTION, enter UPDATE and apply the DELEs (RFC 1939 section 6)."""
        if self.state is State.TRANSACTION and self.deleted:
            assert self.user is not None  # noqa: S101 - TRANSACTION has a user
            assert self.inbox is not None  # noqa: S101
            uids = [self.messages[n - 1].uid for n in sorted(self.deleted)]
            try:
                await self.ctx.store.delete_messages(self.user.id, self.inbox, uids)
            except LightMailError:
                log.warning("pop3 %s: QUIT could not delete", self.conn.id, exc_info=True)
                raise SessionEnd(
                    err("Some deleted messages were not removed", "SYS/TEMP")
                ) from None
        raise SessionEnd(ok("Bye"))
