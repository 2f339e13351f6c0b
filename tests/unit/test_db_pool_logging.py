"""The connection pool's own error log during a database outage (issue #19, item 3).

SQLAlchemy's pool logs each connection it cannot reset or close as an ERROR
with a traceback. When the cause is a database error or a broken socket, the
failed transaction itself was logged already (one line): the pool's record
becomes one DEBUG line. Anything else stays as SQLAlchemy logged it.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from lightmail.storage.db.engine import Database

_POOL = logging.getLogger("sqlalchemy.pool.impl.AsyncAdaptedQueuePool")


def _reset_failed(error: BaseException) -> None:
    try:
        raise error
    except BaseException:
        _POOL.error("Exception during reset or similar", exc_info=True)


@pytest.mark.parametrize(
    "error",
    [sqlite3.OperationalError("disk I/O error"), ConnectionResetError(104, "reset by peer")],
    ids=["dbapi", "socket"],
)
async def test_pool_reset_failure_of_a_lost_connection_is_one_debug_line(
    error: BaseException, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/pool.db")
    caplog.set_level(logging.DEBUG)
    _reset_failed(error)
    await db.close()
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]
    (record,) = [r for r in caplog.records if r.name == "lightmail.storage.db.engine"]
    assert record.levelno == logging.DEBUG
    assert "Exception during reset or similar" in record.getMessage()
    assert record.exc_info is not None


async def test_pool_reset_failure_for_another_reason_stays_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/pool.db")
    _reset_failed(ValueError("a bug"))
    await db.close()
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
