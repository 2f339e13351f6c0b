"""Latency and errors of blob store operations (``lightmail_blob_*``, :mod:`lightmail.metrics`).

Each store wraps an operation in ``with BlobTiming(backend, operation)``. The
clock counts the store's own time, not the client's: a put does not count the
time spent waiting for the next chunk of the message (see :meth:`source`), a
get stops the clock at its first chunk (:meth:`first_chunk`), before the
reader's pace matters.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator
from types import TracebackType
from typing import Self

from lightmail.metrics import BLOB_ERRORS, BLOB_SECONDS, labelled
from lightmail.storage.blobs.base import BlobNotFound


class BlobTiming:
    """Times one blob operation; counts it as an error if it ends in one.

    Not an error: :class:`BlobNotFound` (an answer, not a failure), an error
    raised by a put's source (the client's failure, whose operation is then not
    timed either), and ``BaseException``\\ s such as cancellation.
    """

    __slots__ = ("_done", "_errors", "_seconds", "_source_error", "_start", "_waited")

    def __init__(self, backend: str, operation: str) -> None:
        self._seconds = labelled(BLOB_SECONDS, backend, operation)
        self._errors = labelled(BLOB_ERRORS, backend, operation)
        self._start = time.perf_counter()
        self._waited = 0.0  # seconds spent waiting for a put's source
        self._source_error: BaseException | None = None
        self._done = False

    def __enter__(self) -> Self:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is not None and error is self._source_error:
            self._done = True
            return
        if isinstance(error, Exception) and not isinstance(error, BlobNotFound):
            self._errors.inc()
        self.first_chunk()

    def first_chunk(self) -> None:
        """Stop the clock now (a get's first chunk arrived); later calls do nothing."""
        if not self._done:
            self._done = True
            self._seconds.observe(max(0.0, time.perf_counter() - self._start - self._waited))

    def discard(self) -> None:
        """Record nothing for this operation (it turned out not to be one)."""
        self._done = True

    def source(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """``chunks``, with the time spent waiting for each taken off the clock."""
        return _TimedSource(self, aiter(chunks))

    def _waited_for_source(self, seconds: float, error: BaseException | None) -> None:
        self._waited += seconds
        if error is not None:
            self._source_error = error


class _TimedSource:
    """An async iterator that tells its :class:`BlobTiming` how long each chunk took."""

    __slots__ = ("_source", "_timing")

    def __init__(self, timing: BlobTiming, source: AsyncIterator[bytes]) -> None:
        self._timing = timing
        self._source = source

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        start = time.perf_counter()
        try:
            chunk = await anext(self._source)
        except StopAsyncIteration:
            self._timing._waited_for_source(time.perf_counter() - start, None)
            raise
        except BaseException as error:
            self._timing._waited_for_source(time.perf_counter() - start, error)
            raise
        self._timing._waited_for_source(time.perf_counter() - start, None)
        return chunk
