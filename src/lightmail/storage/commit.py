"""Writing a new blob and the rows that refer to it, so that nothing is lost or leaked.

A blob is written (and durable) before the transaction that makes it visible;
if that transaction fails the blob is deleted again, or, after a crash, left
as an orphan for the sweeper. A blob is deleted only when it is certain that
no committed row refers to it: when the connection fails during COMMIT, the
transaction may have been committed, so :meth:`BlobCommit._commit_new_blob`
looks for its rows on a new connection. The mailstore and the calendar store
both write this way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from lightmail.errors import CommitOutcomeUnknown, TemporaryFailure, TransactionConflict
from lightmail.metrics import LOST_COMMITS
from lightmail.storage.blobs import BlobStore
from lightmail.storage.db.engine import Database

log = logging.getLogger(__name__)

_T = TypeVar("_T")


class BlobCommit:
    """A writer of new blobs and their rows: ``db`` and ``blobs`` are set by the subclass."""

    db: Database
    blobs: BlobStore

    async def _discard_blob(self, *keys: str) -> None:
        """Delete blobs no row will refer to; if that fails, the sweeper will."""
        try:
            await self.blobs.delete_many(keys)
        except Exception:
            log.warning("could not delete unused blob %s; the orphan sweeper will", " ".join(keys))

    async def _commit_new_blob(
        self,
        keys: Sequence[str],
        write: Callable[[AsyncConnection], Awaitable[_T]],
        committed: Callable[[AsyncConnection], Awaitable[_T | None]],
    ) -> _T:
        """Run ``write``, the transaction that makes the new blobs ``keys`` visible
        (one message, all the messages of a MULTIAPPEND, or one calendar object).

        The blobs are deleted only when no committed row can refer to them: when
        ``write`` failed, or the database rolled the transaction back (a
        conflict, once :meth:`Database.transact` has run ``write`` again as often
        as it may). When the connection failed during COMMIT, ``committed``
        reads, on a new connection, what ``write`` would have written: found,
        the operation succeeded and that is its result (so the client does not
        send the message again); not found, or the database still down, the
        temporary failure stands and the blobs stay for the orphan sweep, which
        deletes each only if no ``object_keys`` row ever names it.
        """
        writing = True

        async def body(conn: AsyncConnection) -> _T:
            nonlocal writing
            writing = True  # again when a conflict made the database run it again
            result = await write(conn)
            writing = False
            return result

        try:
            result = await self.db.transact(body)
        except CommitOutcomeUnknown as error:
            return await self._after_lost_commit(" ".join(keys), committed, error)
        except TransactionConflict:
            await self._discard_blob(*keys)  # rolled back, at COMMIT too
            raise
        except BaseException:
            if writing:
                await self._discard_blob(*keys)
            else:
                log.warning("COMMIT failed; blob %s may be in use, so it is kept", " ".join(keys))
            raise
        return result

    async def _after_lost_commit(
        self,
        key: str,
        committed: Callable[[AsyncConnection], Awaitable[_T | None]],
        error: CommitOutcomeUnknown,
    ) -> _T:
        try:
            found = await self._read_until(self.db.commit_check_timeout, committed)
        except TemporaryFailure:
            LOST_COMMITS.labels("unknown").inc()
            log.warning(
                "the reply to a COMMIT was lost and the database is still unavailable: "
                "blob %s is kept for the orphan sweep",
                key,
            )
            raise error from None
        if found is None:
            LOST_COMMITS.labels("rolled_back").inc()
            log.warning(
                "the reply to a COMMIT was lost; it was not committed: "
                "blob %s is left to the orphan sweep",
                key,
            )
            raise error
        LOST_COMMITS.labels("committed").inc()
        log.warning("the reply to a COMMIT was lost, but it was committed (blob %s)", key)
        return found

    async def _read_until(
        self, patience: float, read: Callable[[AsyncConnection], Awaitable[_T]]
    ) -> _T:
        """``read`` in a read transaction, tried again while the database is
        unavailable, until ``patience`` seconds have passed (at least once)."""
        deadline = time.monotonic() + patience
        pause = 0.1
        while True:
            try:
                async with self.db.read() as conn:
                    return await read(conn)
            except TemporaryFailure:
                if time.monotonic() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)
