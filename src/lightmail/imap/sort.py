"""SORT ordering (RFC 5256 BASE.6.4.SORT, RFC 5957), sans-I/O: no asyncio, no storage.

The session finds the messages with the SEARCH machinery, reads their cached
keys (``mailstore/mime/sorting.py`` made them at delivery) and calls `sort`.
Strings were stored in i;unicode-casemap form, so comparing them as Python
strings (code point order, the order of their UTF-8 octets) is the collation
RFC 5256 section 7 asks for; the empty string sorts first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lightmail.imap.wire.types import SortCriterion, SortKey
from lightmail.mailstore.mime.types import SortKeys

__all__ = ["SortMessage", "sort"]


@dataclass(frozen=True, slots=True)
class SortMessage:
    """One message as SORT and THREAD see it.

    ``seq`` is its sequence number, the last tie-breaker; ``number`` what the
    answer shows (the sequence number, or the UID for UID SORT and UID THREAD);
    ``arrival`` its INTERNALDATE; ``sent`` its sent date (RFC 5256 section 2.2:
    the Date header, else INTERNALDATE); both aware.
    """

    seq: int
    number: int
    arrival: datetime
    sent: datetime
    size: int
    keys: SortKeys


_VALUES: dict[SortKey, Callable[[SortMessage], Any]] = {
    SortKey.ARRIVAL: lambda message: message.arrival,
    SortKey.CC: lambda message: message.keys.cc,
    SortKey.DATE: lambda message: message.sent,
    SortKey.FROM: lambda message: message.keys.from_,
    SortKey.SIZE: lambda message: message.size,
    SortKey.SUBJECT: lambda message: message.keys.subject,
    SortKey.TO: lambda message: message.keys.to,
    SortKey.DISPLAYFROM: lambda message: message.keys.display_from,
    SortKey.DISPLAYTO: lambda message: message.keys.display_to,
}


def sort(messages: Iterable[SortMessage], criteria: Sequence[SortCriterion]) -> list[int]:
    """The numbers of `messages` in the order of `criteria`, ties in sequence order.

    REVERSE reverses only its own key, never the sequence order of ties (RFC
    5256). A key named again after its first use cannot break a tie and is
    skipped, so a long criteria list costs no more than nine.
    """
    ordered = sorted(messages, key=lambda message: message.seq)
    used: set[SortKey] = set()
    passes: list[SortCriterion] = []
    for criterion in criteria:
        if criterion.key not in used:
            used.add(criterion.key)
            passes.append(criterion)
    # Stable sorts, least significant criterion first (also with reverse=True,
    # equal elements keep their order).
    for criterion in reversed(passes):
        ordered.sort(key=_VALUES[criterion.key], reverse=criterion.reverse)
    return [message.number for message in ordered]
