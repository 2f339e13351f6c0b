"""The connection driver every line-based protocol shares (IMAP, POP3, LMTP).

h11's trio example plus Stalwart's ``handle_conn``: the driver owns the
:class:`~lightmail.net.stream.Connection`, the protocol's sans-I/O receiver and
the queue of replies. It sends the greeting, reads with the timeout and
deadline of the session's current state, hands each event to the session
(counting it in the per-verb metrics), flushes the replies before every read,
and ends with the protocol's goodbye on shutdown, idle timeout or a passed
deadline. Sessions keep only protocol logic; they end the connection by
raising :class:`SessionEnd` with their last line.

STARTTLS is here too, so plaintext pipelined after the go-ahead is dropped in
one place: what the receiver buffered and what the socket buffered
(RFC 3501 section 6.2.1, RFC 2595 section 3.1, CVE-2011-0411).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import ssl
from typing import Generic, Protocol, TypeVar

from lightmail.metrics import COMMAND_SECONDS, COMMANDS, labelled
from lightmail.net.stream import (
    Connection,
    DeadlineExceeded,
    IdleTimeout,
    ShutdownRequested,
    StreamError,
    Woken,
)
from lightmail.sansio import CONNECTION_CLOSED, NEED_DATA

log = logging.getLogger(__name__)

E = TypeVar("E")
E_co = TypeVar("E_co", covariant=True)
E_contra = TypeVar("E_contra", contravariant=True)


class Goodbye(enum.Enum):
    """Why the driver ends a session that did not end itself."""

    SHUTDOWN = "shutdown"  # the server is stopping
    IDLE = "idle"  # nothing arrived within the state's timeout
    DEADLINE = "deadline"  # the time allowed for a phase (login, command, DATA) ran out


class SessionEnd(Exception):
    """The session is over; ``goodbye`` (may be empty) is the last thing sent."""

    def __init__(self, goodbye: bytes = b"") -> None:
        super().__init__("session over")
        self.goodbye = goodbye


class Allowance:
    """How many of one thing a connection may do (bad commands, commands before
    login); past the limit the session ends with ``goodbye``."""

    def __init__(self, limit: int, goodbye: bytes) -> None:
        self.limit = limit
        self.goodbye = goodbye
        self.used = 0

    def spend(self) -> None:
        """Count one before doing it: the one past the limit ends the session instead."""
        self.used += 1
        if self.used > self.limit:
            raise SessionEnd(self.goodbye)

    def spend_last(self) -> None:
        """Count one already done (an error reply sent): the one that reaches the
        limit ends the session, and nothing more is read."""
        self.used += 1
        if self.used >= self.limit:
            raise SessionEnd(self.goodbye)


class Receiver(Protocol[E_co]):
    """A sans-I/O receiver (:class:`lightmail.sansio.LineBuffer`)."""

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> E_co: ...

    def discard_pending(self) -> int: ...


class Session(Protocol[E_contra]):
    """What a protocol session gives the driver."""

    def read_limits(self) -> tuple[float, float | None]:
        """The idle timeout and the deadline (the loop's clock, or None) of the next read."""
        ...

    def goodbye(self, reason: Goodbye) -> bytes:
        """The last line sent when the driver ends the session for ``reason``."""
        ...

    def verb(self, event: E_contra) -> str | None:
        """The ``command`` label of the metrics for ``event``; None: not counted."""
        ...

    async def handle(self, event: E_contra) -> None:
        """Answer one event (a command or a bad one) with :meth:`Driver.send`."""
        ...


class Driver(Generic[E]):
    """Runs one session over one connection until it ends."""

    def __init__(
        self,
        protocol: str,
        connection: Connection,
        receiver: Receiver[E],
        session: Session[E],
    ) -> None:
        self.protocol = protocol  # the ``protocol`` label of the metrics
        self.connection = connection
        self.receiver = receiver
        self._session = session
        self._out: list[bytes] = []

    async def run(self, greeting: bytes) -> None:
        """:meth:`serve`, then close the connection."""
        try:
            await self.serve(greeting)
        finally:
            await self.connection.close()

    async def serve(self, greeting: bytes) -> None:
        """Greet, then read and handle events until the session ends; the
        connection stays open (the caller closes it)."""
        try:
            self.send(greeting)
            while True:
                await self.dispatch(await self.next_event())
        except SessionEnd as end:
            self.send(end.goodbye)
        except StreamError as error:
            log.debug(
                "%s %s: connection ended: %s",
                self.protocol,
                self.connection.id,
                error.__class__.__name__,
            )
        finally:
            with contextlib.suppress(StreamError):  # the peer may already be gone
                await self.flush()

    async def dispatch(self, event: E) -> None:
        """Hand one event to the session, counted in the metrics; the end of the
        connection ends the session."""
        if event is CONNECTION_CLOSED:
            raise SessionEnd
        verb = self._session.verb(event)
        if verb is None:
            await self._session.handle(event)
            return
        labelled(COMMANDS, self.protocol, verb).inc()
        with labelled(COMMAND_SECONDS, self.protocol, verb).time():
            await self._session.handle(event)

    async def next_event(self) -> E:
        """The receiver's next event, reading (after a flush) while it needs data."""
        while True:
            event = self.receiver.next_event()
            if event is not NEED_DATA:
                return event
            await self.flush()
            self.receiver.receive_data(await self.read())

    async def read(self, *, wakeable: bool = False) -> bytes:
        """The next bytes from the peer (``b""`` at its end), within the session's
        limits; past them, or at shutdown, :class:`SessionEnd` with the goodbye.
        With ``wakeable``, :class:`~lightmail.net.stream.Woken` when the session's
        connection was woken first (IDLE's change events); else a wake-up that
        came late is ignored."""
        while True:
            timeout, deadline = self._session.read_limits()
            try:
                return await self.connection.read_request(timeout, deadline=deadline)
            except Woken:
                if wakeable:
                    raise
                continue
            except DeadlineExceeded:
                reason = Goodbye.DEADLINE
            except IdleTimeout:
                reason = Goodbye.IDLE
            except ShutdownRequested:
                reason = Goodbye.SHUTDOWN
            raise SessionEnd(self._session.goodbye(reason))

    def send(self, data: bytes) -> None:
        """Queue ``data``; it goes out at the next flush (before the next read)."""
        if data:
            self._out.append(data)

    async def flush(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            await self.connection.write(data)

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """After the go-ahead reply was queued: send it, drop the plaintext the
        client pipelined after its command, and upgrade the connection."""
        await self.flush()
        self.receiver.discard_pending()
        await self.connection.start_tls(context)

    async def start_compression(self) -> None:
        """After COMPRESS's go-ahead was queued (RFC 4978): send it as it is, drop
        what the client sent before it saw it (it must wait), then compress."""
        await self.flush()
        dropped = self.receiver.discard_pending()
        if dropped:
            log.info(
                "%s: discarded %d bytes sent before COMPRESS was answered",
                self.connection.id,
                dropped,
            )
        self.connection.start_compression()
