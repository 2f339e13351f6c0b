"""CATENATE (RFC 4469): an APPEND message made of TEXT literals and URLs.

`Catenation` turns the receiver's events for one CATENATE list into the
message's octets, chunk by chunk, for APPEND's ingest (blob store, virus
scan, quota and APPENDUID as for any APPEND): a TEXT literal is streamed as
it arrives, a URL's message or section (RFC 5092, `lightmail.imap.urls`) is
read from the blob store as ``BODY.PEEK[section]<partial>`` would give it
(RFC 4469 section 3), so no piece is held whole. The message is held to
``[imap] max_append_size`` as it grows (``TOOBIG``, RFC 4469 section 4.2); a
URL that cannot be read ends the APPEND with ``NO [BADURL url]`` (section 4.1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from lightmail import errors
from lightmail.imap import fetch as render
from lightmail.imap import urls
from lightmail.imap.session import ImapSession, reply_for_error
from lightmail.imap.wire import commands as c
from lightmail.imap.wire import responses as r
from lightmail.imap.wire.receiver import AppendEnd, ContinuationRequest, Event, LiteralChunk
from lightmail.mailstore.store import MessageMeta

__all__ = ["Broken", "Catenation", "Refused", "drain"]


class Refused(Exception):
    """The APPEND is refused with ``reply`` before the next literal is accepted;
    ``at`` is the event the rest of the command is to be dropped from (None: the
    next one)."""

    def __init__(self, reply: r.Completion, at: c.CatenateText | None = None) -> None:
        super().__init__(reply.text)
        self.reply = reply
        self.at = at


class Broken(Exception):
    """The command broke off; the receiver's event was already answered."""


class Catenation:
    """One CATENATE list, as the message's chunks (`chunks`)."""

    def __init__(self, session: ImapSession) -> None:
        self.session = session
        self.size = 0
        # What ended the list as it should: the end of the command, or another message.
        self.end: AppendEnd | c.AppendMessage | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        """Raises `Refused` (nothing of the rest read yet) or `Broken`."""
        session = self.session
        while True:
            event = await session.driver.next_event()
            if isinstance(event, LiteralChunk):
                yield event.data
            elif isinstance(event, c.CatenateText):
                self._grow(event.size, event)
                if event.synchronizing:
                    session.send(r.ContinuationResponse("Ready for literal"))
                session.receiver.accept_literal()
                await session.driver.flush()
            elif isinstance(event, c.CatenateUrl):
                async for chunk in self._url(event.url):
                    yield chunk
            elif isinstance(event, AppendEnd | c.AppendMessage):
                self.end = event
                return
            else:  # "+" for a URL sent as a literal; or BAD, or the end of the connection
                await session.driver.dispatch(event)
                if not isinstance(event, ContinuationRequest):
                    raise Broken

    def _grow(self, size: int, text: c.CatenateText | None = None) -> None:
        limit = self.session.settings.max_append_size
        self.size += size
        if self.size > limit:
            raise Refused(reply_for_error(errors.MessageTooLarge(limit)), text)

    async def _url(self, raw: bytes) -> AsyncIterator[bytes]:
        """The octets a URL names, as ``BODY.PEEK[section]<partial>`` gives them."""
        session = self.session
        try:
            meta, url = await self._message(raw)
        except (urls.BadUrl, errors.MailboxNotFound, errors.InvalidMailboxName):
            raise Refused(_badurl(raw)) from None
        where = render.section_range(meta.body, url.section)
        if where is None:
            raise Refused(_badurl(raw))
        if where.fields is not None:
            chunks = session.store.read_message(meta.info, where.start, where.end)
            header = b"".join([chunk async for chunk in chunks])
            data = render.filter_header(header, where.fields, exclude=where.exclude)
            start, end = _partial(len(data), url.partial)
            self._grow(end - start)
            if start < end:
                yield data[start:end]
            return
        start, end = _partial(where.end - where.start, url.partial)
        self._grow(end - start)
        if start < end:
            chunks = session.store.read_message(meta.info, where.start + start, where.start + end)
            async for chunk in chunks:
                yield chunk

    async def _message(self, raw: bytes) -> tuple[MessageMeta, urls.MessageUrl]:
        """The message a URL names, if this session's user may read it."""
        session = self.session
        url = urls.parse_url(raw)
        user = session.user
        if user is None or (url.user is not None and url.user.lower() != user.address.lower()):
            raise urls.BadUrl("another user's URL")
        if url.mailbox is not None:
            mailbox = await session.store.get_mailbox(session.user_id, url.mailbox)
        elif session.selected is not None:
            mailbox = await session.store.mailbox_by_id(
                session.user_id, session.selected.mailbox_id
            )
        else:
            raise urls.BadUrl("no mailbox selected")
        if url.uidvalidity is not None and url.uidvalidity != mailbox.uidvalidity:
            raise urls.BadUrl("UIDVALIDITY changed")
        found = await session.store.fetch_meta(mailbox, [url.uid])
        if not found:
            raise urls.BadUrl("no such message")
        return found[0], url


async def drain(session: ImapSession, event: Event) -> bool:
    """Drop the rest of an APPEND refused at ``event``: its URLs and CATENATE
    heads, up to its end or the next literal, which is refused (a synchronizing
    one is then never sent). False if the command broke off instead (the
    receiver's event is answered here)."""
    while True:
        if isinstance(event, AppendEnd):
            return True
        if isinstance(event, c.CatenateText) or (
            isinstance(event, c.AppendMessage) and not event.catenate
        ):
            session.receiver.reject_literal()
            return True
        if isinstance(event, ContinuationRequest):  # a URL sent as a literal
            await session.driver.dispatch(event)
        elif not isinstance(event, c.CatenateUrl | c.AppendMessage | LiteralChunk):
            await session.driver.dispatch(event)
            return False
        event = await session.driver.next_event()


def _partial(length: int, partial: tuple[int, int | None] | None) -> tuple[int, int]:
    """``;PARTIAL=origin[.count]`` of ``length`` octets as ``[start, end)``."""
    if partial is None:
        return 0, length
    origin, count = partial
    offset, taken = render.apply_partial(length, (origin, length if count is None else count))
    return offset, offset + taken


def _badurl(raw: bytes) -> r.Completion:
    return r.no("Cannot read that URL", r.ResponseCode(r.Code.BADURL, urls.badurl_text(raw)))
