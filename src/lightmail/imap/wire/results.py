"""The answers of SEARCH, SORT and THREAD and what they extend to: ``* SEARCH``
and ``* SORT`` (RFC 3501, RFC 5256, with RFC 7162's MODSEQ), ``* ESEARCH`` (RFC
4731, RFC 5267, RFC 9394), ``* THREAD`` (RFC 5256) and ``* VANISHED`` (RFC
7162). The response types and value encoders are in
:mod:`lightmail.imap.wire.responses`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lightmail.imap.wire.responses import (
    DataResponse,
    mod_sequence,
    nz_number,
    ordered_uid_set,
    quoted,
)
from lightmail.imap.wire.types import PartialRange, SequenceSet, ThreadNode

__all__ = [
    "ESearchData",
    "esearch_response",
    "search_response",
    "sort_response",
    "thread_response",
    "vanished_response",
]


def search_response(numbers: Iterable[int], modseq: int | None = None) -> DataResponse:
    """``* SEARCH 2 3 7``; with no match ``* SEARCH``. ``modseq``, the highest
    mod-sequence of the messages found, ends a non-empty answer to a SEARCH with
    a MODSEQ key (``search-sort-mod-seq``, RFC 7162 section 3.1.6)."""
    return DataResponse(_numbers(b"SEARCH", numbers, modseq))


def _numbers(name: bytes, numbers: Iterable[int], modseq: int | None) -> bytes:
    words = [name, *(nz_number(n) for n in numbers)]
    if modseq is not None and len(words) > 1:
        words.append(b"(MODSEQ " + mod_sequence(modseq) + b")")
    return b" ".join(words)


@dataclass(frozen=True, slots=True)
class ESearchData:
    """The ``search-return-data`` of an ESEARCH response: what was asked of MIN, MAX,
    COUNT, ALL (RFC 4731 section 3.1), PARTIAL (RFC 9394 section 3.1) and MODSEQ
    (RFC 4731 section 3.2). ``all`` and the PARTIAL results are in result order
    (mailbox order for SEARCH, sort order for SORT); None or empty: not sent."""

    min: int | None = None
    max: int | None = None
    count: int | None = None
    all: tuple[int, ...] = ()
    partial: tuple[PartialRange, tuple[int, ...]] | None = None
    modseq: int | None = None


def esearch_response(tag: bytes, result: ESearchData, *, uid: bool) -> DataResponse:
    """``* ESEARCH (TAG "a") [UID] MIN 2 ...`` (RFC 4731 section 4). A set of numbers
    goes as a ``sequence-set`` whose ranges only ever ascend, and in the order given
    (RFC 5267 section 3.2): ``5,3:4,1``."""
    words = [b"ESEARCH (TAG " + quoted(tag) + b")"]
    if uid:
        words.append(b"UID")
    if result.min is not None:
        words.append(b"MIN " + nz_number(result.min))
    if result.max is not None:
        words.append(b"MAX " + nz_number(result.max))
    if result.count is not None:
        words.append(b"COUNT %d" % result.count)
    if result.all:
        words.append(b"ALL " + ordered_uid_set(result.all))
    if result.partial is not None:
        requested, found = result.partial
        answer = ordered_uid_set(found) if found else b"NIL"
        words.append(b"PARTIAL (" + requested.to_bytes() + b" " + answer + b")")
    if result.modseq is not None:
        words.append(b"MODSEQ " + mod_sequence(result.modseq))
    return DataResponse(b" ".join(words))


def vanished_response(uids: SequenceSet, *, earlier: bool) -> DataResponse:
    """``* VANISHED [(EARLIER)] known-uids`` (RFC 7162 section 3.2.10)."""
    if uids.uses_star:
        raise ValueError("a VANISHED set names its UIDs")
    head = b"VANISHED (EARLIER) " if earlier else b"VANISHED "
    return DataResponse(head + uids.to_bytes())


def sort_response(numbers: Iterable[int], modseq: int | None = None) -> DataResponse:
    """RFC 5256 section 4: ``* SORT 2 3 6``; with no match ``* SORT``. ``modseq`` as
    for :func:`search_response` (RFC 7162's ``sort-data``)."""
    return DataResponse(_numbers(b"SORT", numbers, modseq))


def thread_response(threads: Sequence[ThreadNode]) -> DataResponse:
    """RFC 5256 section 4: ``* THREAD (2)(3 6 (4 23)(44 7 96))``; ``* THREAD`` for none.

    A chain of only children is one ``thread-members`` list; a node with several
    children nests them, and a dummy (no number) is only its nested children.
    Written with a stack, not recursion, so any depth renders.
    """
    out = [b"THREAD"]
    if threads:
        out.append(b" ")
    stack: list[ThreadNode | bytes] = []
    for thread in reversed(threads):
        stack += [b")", thread, b"("]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        node, numbered = item, False
        while True:
            if node.number is not None:
                out.append(b" " + nz_number(node.number) if numbered else nz_number(node.number))
                numbered = True
            if len(node.children) != 1:
                break
            node = node.children[0]
        if node.children:
            if numbered:
                out.append(b" ")
            for child in reversed(node.children):
                stack += [b")", child, b"("]
    return DataResponse(b"".join(out))
