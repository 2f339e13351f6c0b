"""FETCH and UID FETCH (RFC 3501 section 6.4.5): metadata from SQL, rendered by
:mod:`lightmail.imap.fetch`; large body sections stream from the blob store, and
so do BINARY's decoded parts (RFC 3516, :mod:`lightmail.imap.binary`)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from lightmail.fairness import TimeSlice
from lightmail.imap import binary, objectid
from lightmail.imap import fetch as render
from lightmail.imap.binary import BinaryRefused
from lightmail.imap.session import META_BATCH, ImapSession
from lightmail.imap.wire import commands as c
from lightmail.imap.wire.responses import (
    Code,
    Completion,
    bad,
    literal,
    literal8,
    literal_octets,
    no,
    ok,
)
from lightmail.imap.wire.types import (
    BinarySection,
    BodySection,
    FetchAttribute,
    FetchItem,
    SectionText,
)
from lightmail.mailstore.mime.types import BodyPart
from lightmail.mailstore.store import MessageInfo, MessageMeta, StoreMode
from lightmail.metrics import BLOBS_MISSING
from lightmail.net.driver import SessionEnd
from lightmail.storage.blobs.base import BlobNotFound

log = logging.getLogger(__name__)


async def fetch(session: ImapSession, command: c.FetchCommand) -> Completion:
    """FETCH and UID FETCH (RFC 3501 6.4.5): metadata from SQL, bodies streamed.

    With CHANGEDSINCE (RFC 7162 section 3.1.4.1) only the messages changed since
    are answered, with MODSEQ; MODSEQ and CHANGEDSINCE enable CONDSTORE. With
    VANISHED too (section 3.2.6), the UIDs of the set expunged since come first.
    PARTIAL (RFC 9394 section 3.3) keeps those of the range among the messages
    the set names.
    """
    if command.vanished and not session.qresync:
        return bad("QRESYNC is not enabled")
    view = session.view
    targets = session.resolve(command.sequence_set, uid=command.uid)
    if command.partial is not None:  # before CHANGEDSINCE (RFC 9394 section 3.4)
        targets = command.partial.pick(targets)
    attributes = list(command.attributes)
    if command.uid and FetchItem.UID not in attributes:
        attributes.insert(0, FetchItem.UID)
    if command.changedsince is not None and FetchItem.MODSEQ not in attributes:
        attributes.append(FetchItem.MODSEQ)
    if FetchItem.MODSEQ in attributes:
        session.enable_condstore()
    needs_meta = any(
        isinstance(a, BodySection | BinarySection)
        or a
        in (
            FetchItem.ENVELOPE,
            FetchItem.BODYSTRUCTURE,
            FetchItem.BODY,
            FetchItem.RFC822,
            FetchItem.RFC822_HEADER,
            FetchItem.RFC822_TEXT,
            FetchItem.THREADID,
        )
        for a in attributes
    )
    sets_seen = not view.readonly and any(
        (isinstance(a, BodySection) and not a.peek)
        or (isinstance(a, BinarySection) and not a.peek and not a.size)
        or a in (FetchItem.RFC822, FetchItem.RFC822_TEXT)
        for a in attributes
    )
    if sets_seen and session.condstore:
        # A \Seen this sets is a flag change: told with UID and MODSEQ (RFC 7162 3.2.4).
        attributes += [a for a in (FetchItem.UID, FetchItem.MODSEQ) if a not in attributes]
    mailbox = await session.store.mailbox_by_id(session.user_id, view.mailbox_id)
    live = [(seq, uid) for seq, uid in targets if not view.is_expunged(uid)]
    missing = len(live) < len(targets)
    if command.changedsince is not None:
        if command.vanished:
            await session.send_vanished_earlier(mailbox, command.changedsince, command.sequence_set)
        since = await session.store.changed_since(mailbox, command.changedsince)
        since_uids = {info.uid for info in since}
        live = [(seq, uid) for seq, uid in live if uid in since_uids]
    seen_now: set[int] = set()
    if sets_seen:
        unseen = [uid for _, uid in live if "\\Seen" not in view.flags_of(uid)]
        if unseen:
            stored = await session.store.store_flags(
                session.user_id, mailbox, unseen, StoreMode.ADD, ["\\Seen"]
            )
            for changed in stored.changed:
                view.set_flags(changed.uid, changed.flags.names())
                seen_now.add(changed.uid)
                session.note_own_change(changed.modseq)
            await session.announce_new_keywords(view)
    needs_info = needs_meta or any(
        a in (FetchItem.RFC822_SIZE, FetchItem.INTERNALDATE, FetchItem.MODSEQ, FetchItem.EMAILID)
        for a in attributes
    )
    # The response names of the sections, once for the whole command.
    named = [(a, _response_name(a)) for a in attributes]
    turn = TimeSlice()  # other sessions run in between (issue #14)
    # On a blob store whose reads wait a round trip (S3), the next messages'
    # bodies are read while one is written (mailstore/readahead.py for POP3).
    read_ahead = session.store.blobs.read_ahead if any(map(_reads_blob, attributes)) else 0
    read = functools.partial(_read, session, named)
    unreadable = False
    refused: BinaryRefused | None = None
    for start in range(0, len(live), META_BATCH):
        batch = live[start : start + META_BATCH]
        uids = [uid for _, uid in batch]
        metas: dict[int, MessageMeta] = {}
        infos: dict[int, MessageInfo] = {}
        if needs_meta:
            metas = {m.info.uid: m for m in await session.store.fetch_meta(mailbox, uids)}
            infos = {uid: meta.info for uid, meta in metas.items()}
        elif needs_info:
            infos = {i.uid: i for i in await session.store.fetch_infos(mailbox, uids)}
        answered = [
            (seq, uid, infos.get(uid), metas.get(uid), uid in seen_now)
            for seq, uid in batch
            if not needs_info or uid in infos  # else expunged by another session meanwhile
        ]
        missing = missing or len(answered) < len(batch)
        ahead = _Ahead(read, answered, read_ahead)
        try:
            for index, (_, uid, _, _, _) in enumerate(answered):
                try:
                    response = await ahead.take(index)
                    if response.streams:
                        await _write(session, response)
                    else:
                        session.driver.send(response.whole())
                except BinaryRefused as error:
                    # RFC 3516 section 4.3: the request fails; the other messages are answered.
                    refused = error if refused is None or error.unknown_cte else refused
                except BlobNotFound as error:
                    # The rest of the range is still answered (RFC 3501 6.4.5: NO at the end).
                    unreadable = True
                    BLOBS_MISSING.inc()
                    log.error(
                        "imap %s: message UID %d in mailbox %r (id %d) of %s has no blob %s",
                        session.conn.id,
                        uid,
                        mailbox.name,
                        mailbox.id,
                        session.user.address if session.user else "?",
                        error.key,
                    )
                await turn.pause()
        finally:
            await ahead.close()
    await session.announce(allow_expunge=session.may_expunge(command))
    if unreadable:
        return no("Some messages could not be read", Code.SERVERBUG)
    if refused is not None:
        return no(refused.args[0], Code.UNKNOWN_CTE if refused.unknown_cte else None)
    if missing:
        return no("Some messages were expunged", Code.EXPUNGEISSUED)
    return ok("Fetch completed")


@dataclass(slots=True)  # not frozen: made for every message, and frozen costs per field
class _Response:
    """One FETCH response, read and ready to write: ``items`` in order, and for
    each streamed one (by index) its first chunk and the rest of its stream."""

    seq: int
    items: list[bytes | _Streamed]
    streams: dict[int, tuple[bytes, AsyncIterator[bytes]]]

    def whole(self) -> bytes:
        """The response of a message none of whose items streams, in one piece."""
        items = [item for item in self.items if isinstance(item, bytes)]
        return b"* " + str(self.seq).encode() + b" FETCH (" + b" ".join(items) + b")\r\n"


class _Ahead:
    """The reads of a FETCH's responses, taken in order: with ``depth``, that many
    after the one taken are already under way (an error arrives with its read)."""

    def __init__(
        self,
        read: Callable[..., Awaitable[_Response]],
        arguments: Sequence[tuple[Any, ...]],
        depth: int,
    ) -> None:
        self._read = read
        self._arguments = arguments  # of each read
        self._depth = depth
        self._started: dict[int, asyncio.Task[_Response]] = {}

    def take(self, index: int) -> Awaitable[_Response]:
        if not self._depth:
            return self._read(*self._arguments[index])
        for ahead in range(index, min(index + 1 + self._depth, len(self._arguments))):
            if ahead not in self._started:
                self._started[ahead] = asyncio.ensure_future(self._read(*self._arguments[ahead]))
        return self._started.pop(index)

    async def close(self) -> None:
        """Stop, or close the streams of, the reads a FETCH that ended early left."""
        for task in self._started.values():
            if not task.done():
                task.cancel()
            elif not task.cancelled() and task.exception() is None:
                for _, rest in task.result().streams.values():
                    await rest.aclose()  # type: ignore[attr-defined]
        self._started.clear()


async def _read(
    session: ImapSession,
    named: Sequence[tuple[FetchAttribute, bytes]],
    seq: int,
    uid: int,
    info: MessageInfo | None,
    meta: MessageMeta | None,
    seen_now: bool,
) -> _Response:
    """One FETCH response's items; large body sections stream from the blob store.

    ``info`` and ``meta`` are None when no attribute asked for them. Every
    blob read starts here, before the response is written, so a missing blob
    (:class:`BlobNotFound`) leaves nothing of it written.
    """
    items: list[bytes | _Streamed] = []
    for attribute, name in named:
        if isinstance(attribute, BodySection):
            items.append(await _section(session, attribute, name, meta))
            continue
        if isinstance(attribute, BinarySection):
            items.append(await _binary(session, attribute, name, _need(meta)))
            continue
        match attribute:
            case FetchItem.FLAGS:
                items.append(b"FLAGS " + session.flag_list(uid))
            case FetchItem.UID:
                items.append(b"UID " + str(uid).encode())
            case FetchItem.INTERNALDATE:
                items.append(b"INTERNALDATE " + _internaldate(_need(info).internaldate))
            case FetchItem.RFC822_SIZE:
                items.append(b"RFC822.SIZE " + str(_need(info).size).encode())
            case FetchItem.MODSEQ:
                items.append(b"MODSEQ (" + str(_need(info).modseq).encode() + b")")
            case FetchItem.EMAILID:
                items.append(b"EMAILID (" + objectid.email_id(_need(info).object_key) + b")")
            case FetchItem.THREADID:
                message = _need(meta)
                thread = objectid.thread_id(message.thread_root, message.info.object_key)
                items.append(b"THREADID (" + thread + b")")
            case FetchItem.ENVELOPE:
                items.append(b"ENVELOPE " + render.envelope_bytes(_need(meta).envelope))
            case FetchItem.BODYSTRUCTURE:
                structure = render.body_structure_bytes(_need(meta).body, extensible=True)
                items.append(b"BODYSTRUCTURE " + structure)
            case FetchItem.BODY:
                structure = render.body_structure_bytes(_need(meta).body, extensible=False)
                items.append(b"BODY " + structure)
            case FetchItem.RFC822 | FetchItem.RFC822_HEADER | FetchItem.RFC822_TEXT:
                rfc822 = _RFC822_SECTIONS[attribute]
                items.append(await _section(session, rfc822, name, meta))
    if seen_now and all(attribute is not FetchItem.FLAGS for attribute, _ in named):
        items.append(b"FLAGS " + session.flag_list(uid))
    streams: dict[int, tuple[bytes, AsyncIterator[bytes]]] = {}
    for index, item in enumerate(items):
        if isinstance(item, _Streamed):
            chunks = aiter(item.chunks)
            streams[index] = (await anext(chunks, b""), chunks)
    return _Response(seq, items, streams)


async def _write(session: ImapSession, response: _Response) -> None:
    """Write one read FETCH response that streams, the rest of its streams as they
    arrive."""
    items, streams = response.items, response.streams
    session.driver.send(b"* " + str(response.seq).encode() + b" FETCH (")
    for index, item in enumerate(items):
        separator = b" " if index else b""
        if isinstance(item, bytes):
            session.driver.send(separator + item)
            continue
        session.driver.send(separator + item.head)
        await session.driver.flush()
        first, rest = streams[index]
        octets = _as_octets if item.literal8 else literal_octets
        await session.conn.write(octets(first))
        async for chunk in rest:
            await session.conn.write(octets(chunk))
    session.driver.send(b")\r\n")


async def _section(
    session: ImapSession, section: BodySection, name: bytes, meta: MessageMeta | None
) -> bytes | _Streamed:
    """``BODY[section]<partial>``: from the cached header when it holds the bytes,
    inline when small, else streamed from the blob store.

    Always a literal, even ``{0}``: the grammar allows a quoted string, but
    curl and other clients parse only literals (Dovecot and Cyrus send only
    literals). NUL goes out as 0x80 (``literal``, ``literal_octets``).
    """
    meta = _need(meta)
    where = (
        render.section_range(meta.body, section)
        if section.part
        else render.root_section_range(*meta.root_bounds, section)
    )
    if where is None:
        return name + b" " + literal(b"")
    if where.fields is not None:
        header = await _read_range(session, meta, where.start, where.end)
        data = render.filter_header(header, where.fields, exclude=where.exclude)
        offset, count = render.apply_partial(len(data), section.partial)
        return name + b" " + literal(data[offset : offset + count])
    offset, count = render.apply_partial(where.end - where.start, section.partial)
    start, end = where.start + offset, where.start + offset + count
    if count == 0:
        return name + b" " + literal(b"")
    if count <= _INLINE_LIMIT or _cached(meta, end):
        return name + b" " + literal(await _read_range(session, meta, start, end))
    head = name + b" {" + str(count).encode() + b"}\r\n"
    return _Streamed(head, session.store.read_message(meta.info, start, end))


async def _binary(
    session: ImapSession, section: BinarySection, name: bytes, meta: MessageMeta
) -> bytes | _Streamed:
    """``BINARY[part]<partial>`` and ``BINARY.SIZE[part]`` (RFC 3516 section 4.3):
    the decoded content inline when the part is small, else streamed, decoded as it
    is sent; ``literal8`` when it holds NUL. Raises `BinaryRefused`."""
    part = binary.binary_part(meta.body, section.part)
    if part is None or part.size == 0:
        return name + (b" 0" if section.size else b" " + literal(b""))
    if section.size:
        if binary.is_identity(part):
            return name + b" " + str(part.size).encode()
        whole = binary.Window()
        await _measure(session, meta, part, whole)
        return name + b" " + str(whole.taken).encode()
    window = _window(section)
    if part.size <= _INLINE_LIMIT:
        data = b"".join([piece async for piece in _decode(session, meta, part, window)])
        return name + b" " + (literal8(data) if window.nul else literal(data))
    await _measure(session, meta, part, window)
    if window.taken == 0:
        return name + b" " + literal(b"")
    head = name + (b" ~{" if window.nul else b" {") + str(window.taken).encode() + b"}\r\n"
    return _Streamed(head, _decoded(session, meta, part, section, window.taken), window.nul)


async def _decode(
    session: ImapSession, meta: MessageMeta, part: BodyPart, window: binary.Window
) -> AsyncIterator[bytes]:
    """The decoded content of ``part`` that falls in ``window`` (which counts it
    and notes NUL), reading the blob only as far as the window reaches."""
    decoder = binary.ContentDecoder(part)
    async for chunk in session.store.read_message(meta.info, part.body_start, part.end):
        piece = window.feed(decoder.feed(chunk))
        if piece:
            yield piece
        if window.full:
            return
    piece = window.feed(decoder.close())
    if piece:
        yield piece


async def _measure(
    session: ImapSession, meta: MessageMeta, part: BodyPart, window: binary.Window
) -> None:
    """Run ``part`` through ``window`` only to count it (and see NUL)."""
    async for _ in _decode(session, meta, part, window):
        pass


async def _decoded(
    session: ImapSession, meta: MessageMeta, part: BodyPart, section: BinarySection, size: int
) -> AsyncIterator[bytes]:
    """The decoded content of a large part as it is sent, exactly the ``size``
    octets announced: a different count would break the framing of the whole
    connection, so it ends the session (a bug of ours, logged)."""
    window = _window(section)
    async for piece in _decode(session, meta, part, window):
        yield piece
    if window.taken != size:
        log.error(
            "imap %s: BINARY of UID %d decoded to %d octets, not the %d announced",
            session.conn.id,
            meta.info.uid,
            window.taken,
            size,
        )
        raise SessionEnd


def _reads_blob(attribute: FetchAttribute) -> bool:
    """Whether ``attribute`` may read the blob: not the message's own header,
    which the cached parse holds."""
    if isinstance(attribute, BodySection):
        return bool(attribute.part) or attribute.text not in _HEADER_TEXTS
    return isinstance(attribute, BinarySection) or attribute in (
        FetchItem.RFC822,
        FetchItem.RFC822_TEXT,
    )


_HEADER_TEXTS = (SectionText.HEADER, SectionText.HEADER_FIELDS, SectionText.HEADER_FIELDS_NOT)


def _window(section: BinarySection) -> binary.Window:
    """What ``<partial>`` keeps of the decoded content (all of it without one)."""
    return binary.Window(*section.partial) if section.partial else binary.Window()


async def _read_range(session: ImapSession, meta: MessageMeta, start: int, end: int) -> bytes:
    if _cached(meta, end):
        return meta.header[start:end]
    chunks = session.store.read_message(meta.info, start, end)
    return b"".join([chunk async for chunk in chunks])


@dataclass(frozen=True, slots=True)
class _Streamed:
    """A FETCH item whose literal is sent as it is read from the blob store:
    ``head`` is its name and the literal's head (``{n}`` or, with ``literal8``,
    ``~{n}``) ending in CRLF, ``chunks`` its n octets."""

    head: bytes
    chunks: AsyncIterator[bytes]
    literal8: bool = False


def _as_octets(data: bytes) -> bytes:
    """A ``literal8`` carries any octet, NUL included (RFC 3516 section 7)."""
    return data


_INLINE_LIMIT = 16 * 1024
_RFC822_SECTIONS = {
    FetchItem.RFC822: BodySection(),
    FetchItem.RFC822_HEADER: BodySection(peek=True, text=SectionText.HEADER),
    FetchItem.RFC822_TEXT: BodySection(text=SectionText.TEXT),
}


def _internaldate(value: datetime) -> bytes:
    """``date-time`` (RFC 3501 section 9) in the zone the message was given
    (RFC 3501 section 2.3.3); a naive value is UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return b'"' + value.strftime("%d-%b-%Y %H:%M:%S %z").encode() + b'"'


def _response_name(attribute: FetchAttribute) -> bytes:
    """What a section's data is called in the response (``BODY[...]<origin>``,
    ``BINARY[...]``, ``RFC822.HEADER``); empty for the other items."""
    if isinstance(attribute, BodySection | BinarySection):
        return attribute.response_name
    if attribute in _RFC822_SECTIONS:
        return attribute.response_name
    return b""


_T = TypeVar("_T")


def _need(value: _T | None) -> _T:
    """FETCH read what its attributes need before rendering; None here is our bug."""
    if value is None:
        raise AssertionError("FETCH did not read what an attribute needs")
    return value


def _cached(meta: MessageMeta, end: int) -> bool:
    """Whether bytes up to ``end`` lie in the complete header cached in SQL."""
    return end <= len(meta.header) == meta.root_bounds[0]
