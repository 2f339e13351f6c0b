"""Concurrent LMTP deliveries and IMAP APPENDs while a fault happens, then a count
of what became of every message.

Clients behave as an MTA and a mail client would: a 4xx reply (LMTP) or
``NO [UNAVAILABLE]`` (IMAP) is retried after a pause, for the recipients it
concerned, until it succeeds. Every message is unique (its Message-ID) and
carries random bytes, so the check afterwards can tell a lost, damaged or
duplicated delivery from a good one.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lightmail.accounts.service import User
from tests.support.faultrig import ImapClient, LmtpClient, Rig

_RETRY_PAUSE = 0.1  # seconds between a temporary failure and the retry
_BROKEN = (OSError, asyncio.IncompleteReadError, TimeoutError)


@dataclass
class Counts:
    sent: int = 0  # messages the clients set out to deliver or append
    deliveries: int = 0  # recipient deliveries of those (an APPEND is one)
    acknowledged: int = 0  # deliveries answered 250 / OK
    temporary: int = 0  # 4xx or NO [UNAVAILABLE] answers, each retried
    permanent: int = 0  # 5xx or another NO: must never happen here
    dropped: int = 0  # connections that broke or that the server closed
    duplicates: int = 0  # extra copies of an acknowledged delivery
    lost: int = 0  # acknowledged deliveries with no copy
    damaged: int = 0  # copies whose blob differs from what was sent
    blobless: int = 0  # message rows whose blob is missing
    faults: int = 0  # faults injected
    recoveries: list[float] = field(default_factory=list)  # end of a fault to the next ack
    elapsed: float = 0.0

    @property
    def recovery(self) -> float | None:
        """The longest recovery (seconds from a fault's end to the next acknowledgement)."""
        return max(self.recoveries, default=None)

    def summary(self) -> str:
        recovery = "n/a" if self.recovery is None else f"{self.recovery:.2f} s"
        if len(self.recoveries) > 1:
            recovery = f"{min(self.recoveries):.2f}-{self.recovery:.2f} s over {self.faults} faults"
        return (
            f"sent {self.sent} messages ({self.deliveries} deliveries), "
            f"acknowledged {self.acknowledged}, 4xx {self.temporary}, 5xx {self.permanent}, "
            f"dropped {self.dropped}, duplicates {self.duplicates}, lost {self.lost}, "
            f"damaged {self.damaged}, rows without blob {self.blobless}, "
            f"recovery {recovery}, {self.elapsed:.1f} s"
        )

    @property
    def clean(self) -> bool:
        """Every delivery acknowledged once, whole, and nothing broken on the way."""
        return (
            self.acknowledged == self.deliveries
            and not self.permanent
            and not self.dropped
            and not self.duplicates
            and not self.lost
            and not self.damaged
            and not self.blobless
        )


def message(size: int) -> tuple[str, bytes]:
    """A unique message of about ``size`` bytes: its Message-ID and bytes."""
    message_id = f"<{uuid.uuid4().hex}@load.example>"
    header = (
        f"From: load@example.org\r\nTo: someone@example.org\r\nSubject: load\r\n"
        f"Message-ID: {message_id}\r\n\r\n"
    ).encode()
    lines = [os.urandom(30).hex().encode() + b"\r\n" for _ in range(max(1, size // 62))]
    return message_id, header + b"".join(lines)


@dataclass
class _Run:
    rig: Rig
    users: list[User]
    patience: float  # seconds one message may take, retries included
    counts: Counts = field(default_factory=Counts)
    sent: dict[str, bytes] = field(default_factory=dict)  # Message-ID -> bytes
    acked: set[tuple[str, int]] = field(default_factory=set)  # (Message-ID, user id)
    fault_end: float | None = None
    ack_event: asyncio.Event = field(default_factory=asyncio.Event)

    def ack(self, message_id: str, user: User) -> None:
        self.acked.add((message_id, user.id))
        self.counts.acknowledged += 1
        now = time.monotonic()
        if self.fault_end is not None and now >= self.fault_end:
            self.counts.recoveries.append(now - self.fault_end)
            self.fault_end = None
        self.ack_event.set()

    def check_time(self, started: float) -> None:
        if time.monotonic() - started > self.patience:
            raise AssertionError(f"a message was not accepted within {self.patience} s")

    async def lmtp_worker(self, index: int, count: int) -> None:
        client: LmtpClient | None = None
        for number in range(count):
            message_id, data = message(1_000 + (index * 7919 + number * 104729) % 30_000)
            first = (index + number) % len(self.users)
            recipients = [self.users[first]]
            if number % 2:
                recipients.append(self.users[(first + 1) % len(self.users)])
            self.sent[message_id] = data
            self.counts.sent += 1
            self.counts.deliveries += len(recipients)
            pending = list(recipients)
            started = time.monotonic()
            while pending:
                self.check_time(started)
                try:
                    if client is None:
                        client = await self.rig.lmtp_client()
                    await self._transaction(client, message_id, data, pending)
                except _BROKEN:
                    self.counts.dropped += 1
                    if client is not None:
                        await client.close()
                    client = None
                if pending:
                    await asyncio.sleep(_RETRY_PAUSE)
        if client is not None:
            await client.command("QUIT")
            await client.close()

    async def _transaction(
        self, client: LmtpClient, message_id: str, data: bytes, pending: list[User]
    ) -> None:
        """One LMTP transaction for the pending recipients; removes those done."""
        code, _ = await client.command("MAIL FROM:<load@example.org>")
        if code != 250:
            self._refused(code)
            await client.command("RSET")
            return
        accepted = []
        for user in list(pending):
            code, _ = await client.command(f"RCPT TO:<{user.address}>")
            if code == 250:
                accepted.append(user)
            elif not self._refused(code):
                pending.remove(user)
        if not accepted:
            await client.command("RSET")
            return
        code, _ = await client.command("DATA")
        if code != 354:
            raise ConnectionResetError(f"DATA answered {code}")
        await client.send(data + b".\r\n")
        for user in accepted:
            code, _ = await client.reply()
            if code == 250:
                pending.remove(user)
                self.ack(message_id, user)
            elif not self._refused(code):
                pending.remove(user)

    def _refused(self, code: int) -> bool:
        """Count a refusal; True if it is temporary (retry)."""
        if code // 100 == 4:
            self.counts.temporary += 1
            return True
        self.counts.permanent += 1
        return False

    async def imap_worker(self, index: int, count: int) -> None:
        user = self.users[index % len(self.users)]
        client: ImapClient | None = None
        for number in range(count):
            message_id, data = message(1_000 + (index * 6271 + number * 7907) % 30_000)
            self.sent[message_id] = data
            self.counts.sent += 1
            self.counts.deliveries += 1
            started = time.monotonic()
            while True:
                self.check_time(started)
                try:
                    if client is None:
                        client = await self.rig.imap_client(user)
                    status, _ = await client.command("APPEND INBOX", data)
                    if status.startswith(b"OK"):
                        self.ack(message_id, user)
                        break
                    if not status.startswith(b"NO [UNAVAILABLE]"):
                        self.counts.permanent += 1
                        break
                    self.counts.temporary += 1
                except ConnectionRefusedError:  # LOGIN answered NO: the database is down
                    self.counts.temporary += 1
                    client = None
                except _BROKEN:
                    self.counts.dropped += 1
                    if client is not None:
                        await client.close()
                    client = None
                await asyncio.sleep(_RETRY_PAUSE)
        if client is not None:
            await client.command("LOGOUT")
            await client.close()

    async def inject(self, faults: Sequence[Fault], every: int, load: asyncio.Future[Any]) -> None:
        """Run the faults one after the other, each once ``every`` more deliveries
        were acknowledged (the first after ``every``), while the load lasts."""
        for number, fault in enumerate(faults, start=1):
            while self.counts.acknowledged < number * every:
                if load.done():
                    return
                self.ack_event.clear()
                await asyncio.wait(
                    {asyncio.ensure_future(self.ack_event.wait()), load},
                    return_when=asyncio.FIRST_COMPLETED,
                )
            await fault()
            self.counts.faults += 1
            self.fault_end = time.monotonic()

    async def verify(self) -> None:
        """Count lost, duplicated and damaged deliveries and rows without a blob."""
        copies: dict[tuple[str, int], list[str]] = {}
        for user_id, _, message_id, key in await self.rig.stored_messages():
            copies.setdefault((message_id, user_id), []).append(key)
        for message_id, user_id in self.acked:
            keys = copies.get((message_id, user_id), [])
            self.counts.lost += not keys
            self.counts.duplicates += max(0, len(keys) - 1)
            for key in keys:
                blob = await self.rig.blob(key)
                if blob is not None and not blob.endswith(self.sent[message_id]):
                    self.counts.damaged += 1
        stored = await self.rig.blob_keys()
        self.counts.blobless = sum(
            1 for found in copies.values() for key in found if key not in stored
        )


Fault = Callable[[], Awaitable[None]]


async def run_load(
    rig: Rig,
    faults: Sequence[Fault],
    *,
    users: int = 3,
    lmtp_clients: int = 4,
    imap_clients: int = 2,
    per_client: int = 20,
    fault_every: int = 20,
    patience: float = 90.0,
) -> Counts:
    """Deliver and append concurrently, inject ``faults`` on the way, and count."""
    run = _Run(rig, [await rig.new_user() for _ in range(users)], patience)
    started = time.monotonic()
    tasks = [run.lmtp_worker(i, per_client) for i in range(lmtp_clients)]
    tasks += [run.imap_worker(i, per_client) for i in range(imap_clients)]
    load = asyncio.gather(*tasks)
    await asyncio.gather(load, run.inject(faults, fault_every, load))
    run.counts.elapsed = time.monotonic() - started
    await run.verify()
    return run.counts
