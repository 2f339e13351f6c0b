"""Reading the next messages before they are asked for, where a read waits.

A POP3 client downloads a maildrop in order: RETR 1, RETR 2, ... On a blob
store whose every read is a network round trip (S3: about a millisecond on
loopback, more across a network), each RETR would wait that long before its
first byte. :class:`ReadAhead` starts the reads of the next few messages while
the current one is sent, as Dovecot's ``mail_prefetch_count`` does for its
object-storage backends.

Only small messages are read ahead: whole, each at most one chunk
(``READ_CHUNK``), at most the blob store's ``read_ahead`` of them at a time,
so a session holds at most that many chunks. A larger message gains little
(its transfer outlasts the round trip) and is read when asked for. A read
ahead that fails fails again where the message is asked for, with the same
error; one that is not asked for (the client skipped it, or left) is
cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable

from lightmail.mailstore.store import MailStore
from lightmail.mailstore.types import MessageInfo
from lightmail.storage.blobs.base import READ_CHUNK


class ReadAhead:
    """The reads started for the messages a session is expected to read next."""

    def __init__(self, store: MailStore) -> None:
        self._store = store
        self._depth = store.blobs.read_ahead
        self._started: dict[int, asyncio.Task[bytes]] = {}  # by UID

    def read(self, info: MessageInfo, following: Iterable[MessageInfo]) -> AsyncIterator[bytes]:
        """The whole of ``info``'s message, from a read started earlier when there
        is one; and the reads of the first small messages of ``following`` (the
        ones after it, in order; taken lazily) start, while those no longer
        wanted stop."""
        started = self._started.pop(info.uid, None)
        if self._depth:
            small = (m for m in following if m.size <= READ_CHUNK)
            wanted = {m.uid: m for m in itertools.islice(small, self._depth)}
            for uid in self._started.keys() - wanted.keys():
                self._started.pop(uid).cancel()
            for uid, message in wanted.items():
                if uid not in self._started:
                    task = asyncio.create_task(self._whole(message))
                    task.add_done_callback(_retrieved)
                    self._started[uid] = task
        if started is None:
            return self._store.read_message(info)
        return _result(started)

    def close(self) -> None:
        """Stop every read nobody asked for."""
        for task in self._started.values():
            task.cancel()
        self._started.clear()

    async def _whole(self, info: MessageInfo) -> bytes:
        return b"".join([chunk async for chunk in self._store.read_message(info)])


async def _result(task: asyncio.Task[bytes]) -> AsyncIterator[bytes]:
    yield await task


def _retrieved(task: asyncio.Task[bytes]) -> None:
    """Mark a failed read's error as seen: a read nobody asks for again is no
    error to log, and one asked for raises it there."""
    if not task.cancelled():
        task.exception()
