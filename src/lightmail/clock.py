"""The clock every timestamp in the database is read from: naive UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as naive UTC (how the database keeps every timestamp)."""
    return datetime.now(UTC).replace(tzinfo=None)


def local_now() -> datetime:
    """Now, in the server's local zone: the INTERNALDATE of mail that arrives
    without one (LMTP, a quarantine release, APPEND without a date)."""
    return datetime.now().astimezone()
