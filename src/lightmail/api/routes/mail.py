"""A user's mail: ``/users/{address}/mailboxes``, their messages, and ``deleted``.

Mailbox names are path segments that may contain ``/`` (``Archive/2024``),
percent-encoded or not. The message routes are registered before the
mailbox ones, so ``.../mailboxes/A/messages/7`` is message 7 of ``A`` (a
mailbox named ``A/messages/7`` can be listed and imported into, but not
renamed or deleted through the API).

Every change goes through the mailstore, which publishes it to IMAP sessions.
``POST .../messages`` takes the same path as IMAP APPEND: the body streams into
the blob store (never whole in memory), through the virus scanner when
``[antivirus] scan_append`` is on, and is then committed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from lightmail.accounts.service import User as AccountUser
from lightmail.antivirus.policy import ingest_scanned
from lightmail.api import schemas as s
from lightmail.api.deps import (
    Address,
    Context,
    Cursor,
    ItemId,
    Limit,
    MailboxName,
    Uid,
    decode_cursor,
    delete_route,
    encode_cursor,
    paginate,
)
from lightmail.api.errors import ApiError, responses
from lightmail.errors import (
    InvalidValue,
    MailboxNotFound,
    MessageNotFound,
    MessageTooLarge,
)
from lightmail.mailstore.mime.types import Address as EnvelopeAddress
from lightmail.mailstore.mime.types import AddressList
from lightmail.mailstore.store import (
    SYSTEM_FLAGS,
    Mailbox,
    MailStore,
    MessageInfo,
    MessageMeta,
    StoreMode,
)

router = APIRouter()

RFC822 = "message/rfc822"
BINARY = {"type": "string", "format": "binary"}
# An IMAP flag keyword is an atom (RFC 3501 section 9): printable ASCII
# except ( ) { space % * " \ ] -- and not \Recent, which only the server sets.
_KEYWORD = re.compile(r"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]{1,128}")
_SYSTEM_BY_FOLDED = {flag.lower(): flag for flag in SYSTEM_FLAGS}
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def raw_body(media_type: str, description: str) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that takes raw bytes of ``media_type``."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {media_type: {"schema": BINARY}},
        }
    }


def raw_response(media_type: str, description: str, *statuses: int) -> dict[int | str, Any]:
    """The OpenAPI ``responses`` of a route that answers raw bytes of ``media_type``
    (200), or one of the error ``statuses``."""
    return {
        200: {"description": description, "content": {media_type: {"schema": BINARY}}},
        **responses(*statuses),
    }


async def _user(ctx: Context, address: str) -> AccountUser:
    return await ctx.accounts.get_user(address)


async def _mailbox(store: MailStore, user_id: int, name: str) -> Mailbox:
    return await store.get_mailbox(user_id, name)


def _flags(names: list[str]) -> list[str]:
    """Canonical flag names, or 422 for one IMAP could not carry."""
    result: list[str] = []
    for name in names:
        system = _SYSTEM_BY_FOLDED.get(name.lower())
        if system is not None:
            result.append(system)
        elif _KEYWORD.fullmatch(name):
            result.append(name)
        else:
            raise ApiError(
                422,
                "invalid_flag",
                f"{name[:100]!r} is not a flag: use \\Seen, \\Answered, \\Flagged, \\Deleted,"
                ' \\Draft or a keyword of printable ASCII without ( ) { % * " \\ ] or space.',
            )
    return list(dict.fromkeys(result))


def _decoded(text: str | None) -> str:
    """A header value with its RFC 2047 encoded words decoded (as written if they are bad)."""
    if not text:
        return ""
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return text


def _address(address: EnvelopeAddress) -> str:
    mailbox = f"{address.mailbox or ''}@{address.host or ''}"
    name = _decoded(address.name)
    return f"{name} <{mailbox}>" if name else mailbox


def _addresses(addresses: AddressList) -> list[str]:
    return [
        _address(item) for item in addresses or () if not (item.is_group_start or item.is_group_end)
    ]


def _message(meta: MessageMeta) -> s.Message:
    info = meta.info
    return s.Message(
        uid=info.uid,
        flags=list(info.flags.names()),
        size=info.size,
        internal_date=info.internaldate.astimezone(UTC),  # the instant, shown in UTC as always
        from_=", ".join(_addresses(meta.envelope.from_)),
        subject=_decoded(meta.envelope.subject),
    )


def _detail(meta: MessageMeta) -> s.MessageDetail:
    envelope = meta.envelope
    return s.MessageDetail(
        **_message(meta).model_dump(),
        date=envelope.date,
        to=_addresses(envelope.to),
        cc=_addresses(envelope.cc),
        message_id=envelope.message_id,
    )


async def _meta(store: MailStore, mailbox: Mailbox, uid: int) -> MessageMeta:
    found = await store.fetch_meta(mailbox, [uid])
    if not found:
        raise MessageNotFound(f"no message with UID {uid} in {mailbox.name}")
    return found[0]


async def _info(store: MailStore, mailbox: Mailbox, uid: int) -> MessageInfo:
    found = await store.fetch_infos(mailbox, [uid])
    if not found:
        raise MessageNotFound(f"no message with UID {uid} in {mailbox.name}")
    return found[0]


async def _status(store: MailStore, user_id: int, name: str) -> s.Mailbox:
    return s.Mailbox.model_validate(await store.mailbox_status(user_id, name))


# -- messages (registered before the mailbox routes: see the module docstring) ---------

_MESSAGES = "/users/{address}/mailboxes/{name:path}/messages"


@router.get(_MESSAGES, tags=["messages"], responses=responses(404, 422))
async def list_messages(
    ctx: Context, address: Address, name: MailboxName, limit: Limit = 100, cursor: Cursor = None
) -> s.MessagePage:
    """The mailbox's messages in UID order."""
    user = await _user(ctx, address)
    mailbox = await _mailbox(ctx.store, user.id, name)
    after = decode_cursor(cursor, int) or 0
    infos = await ctx.store.list_messages(mailbox, after_uid=after, limit=limit + 1)
    page = [info.uid for info in infos[:limit]]
    metas = await ctx.store.fetch_meta(mailbox, page)
    more = len(infos) > limit
    return s.MessagePage(
        items=[_message(meta) for meta in metas],
        next_cursor=encode_cursor(page[-1]) if more and page else None,
    )


@router.post(
    _MESSAGES,
    status_code=201,
    tags=["messages"],
    responses=responses(404, 409, 413, 415, 422),
    openapi_extra=raw_body(RFC822, "The message, as it would be given to IMAP APPEND."),
)
async def import_message(
    ctx: Context,
    request: Request,
    address: Address,
    name: MailboxName,
    flags: Annotated[
        list[str] | None, Query(max_length=100, description="Flags to set, e.g. \\Seen.")
    ] = None,
    internal_date: Annotated[
        datetime | None, Query(description="The internal date; now if left out.")
    ] = None,
) -> s.Appended:
    """Import a raw message (the body is streamed, like IMAP APPEND, and virus-scanned
    when ``[antivirus] scan_append`` is on); answers its new UID."""
    require_media_type(request, RFC822)
    flag_names = _flags(flags or [])
    if internal_date is not None:
        if internal_date.tzinfo is None:
            internal_date = internal_date.replace(tzinfo=UTC)
        if not _EARLIEST <= internal_date <= datetime(9999, 1, 1, tzinfo=UTC):
            raise ApiError(422, "invalid_date", "The internal date must be from 1970 to 9998.")
    limit = ctx.settings.imap.max_append_size
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise MessageTooLarge(limit)
    if length == "0":
        raise InvalidValue("the message is empty")
    user = await _user(ctx, address)
    mailbox = await _mailbox(ctx.store, user.id, name)
    source = _limited(request.stream(), limit)
    what = f"api import into {user.address} {mailbox.name}"
    async with ingest_scanned(
        ctx.store, ctx.scanner, ctx.settings.antivirus, source, what
    ) as ingest:
        if ingest.size == 0:
            raise InvalidValue("the message is empty")
        result = await ingest.append(
            user.id, mailbox.name, flags=flag_names, internaldate=internal_date
        )
    return s.Appended(mailbox=mailbox.name, uidvalidity=result.uidvalidity, uid=result.uid)


def require_media_type(request: Request, media_type: str) -> None:
    """Refuse a body that does not say it is of ``media_type`` (415): text or JSON sent
    here by mistake must not be stored as mail. The media type's case and parameters
    do not matter (RFC 9110 section 8.3.1)."""
    given = request.headers.get("content-type", "")
    if given.partition(";")[0].strip().lower() != media_type:
        shown = f"{given[:100]!r}" if given else "none"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"The body must be sent as Content-Type: {media_type} (got {shown}).",
        )


async def _limited(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise MessageTooLarge(limit)
            yield chunk
    except ClientDisconnect:
        raise InvalidValue("the request body ended early") from None


_MESSAGE = _MESSAGES + "/{uid}"


@router.get(_MESSAGE, tags=["messages"], responses=responses(404, 422))
async def get_message(
    ctx: Context, address: Address, name: MailboxName, uid: Uid
) -> s.MessageDetail:
    user = await _user(ctx, address)
    mailbox = await _mailbox(ctx.store, user.id, name)
    return _detail(await _meta(ctx.store, mailbox, uid))


@router.get(
    _MESSAGE + "/raw",
    tags=["messages"],
    response_class=StreamingResponse,
    responses=raw_response(RFC822, "The message as stored.", 404, 422),
)
async def get_raw_message(
    ctx: Context, address: Address, name: MailboxName, uid: Uid
) -> StreamingResponse:
    """The message exactly as stored, streamed from the blob store."""
    user = await _user(ctx, address)
    mailbox = await _mailbox(ctx.store, user.id, name)
    info = await _info(ctx.store, mailbox, uid)
    return await stream(ctx.store.read_message(info), info.size)


async def stream(chunks: AsyncIterator[bytes], size: int) -> StreamingResponse:
    """A ``message/rfc822`` answer; the first chunk is read before it starts, so a
    blob store that is down still gets a 503."""
    first = await anext(chunks, b"")

    async def body() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), media_type=RFC822, headers={"Content-Length": str(size)})


@router.patch(_MESSAGE, tags=["messages"], responses=responses(404, 413, 422))
async def set_flags(
    ctx: Context, address: Address, name: MailboxName, uid: Uid, body: s.FlagsIn
) -> s.MessageDetail:
    """Replace the message's flags (IMAP ``STORE FLAGS``)."""
    flag_names = _flags(body.flags)
    user = await _user(ctx, address)
    mailbox = await _mailbox(ctx.store, user.id, name)
    await _info(ctx.store, mailbox, uid)
    await ctx.store.store_flags(user.id, mailbox, [uid], StoreMode.REPLACE, flag_names)
    return _detail(await _meta(ctx.store, mailbox, uid))


@delete_route(router, _MESSAGE, "messages", 404, 422)
async def delete_message(ctx: Context, address: Address, name: MailboxName, uid: Uid) -> Response:
    """Soft-delete the message (as EXPUNGE does): restorable until the GC purges it."""
    user = await _user(ctx, address)
    mailbox = await _mailbox(ctx.store, user.id, name)
    await _info(ctx.store, mailbox, uid)
    await ctx.store.delete_messages(user.id, mailbox, [uid])
    return Response(status_code=204)


# -- mailboxes -------------------------------------------------------------------------------

_MAILBOXES = "/users/{address}/mailboxes"


@router.get(_MAILBOXES, tags=["mailboxes"], responses=responses(404, 422))
async def list_mailboxes(
    ctx: Context, address: Address, limit: Limit = 100, cursor: Cursor = None
) -> s.MailboxPage:
    """The user's mailboxes by name, with their message counts and sizes."""
    user = await _user(ctx, address)
    mailboxes = await ctx.store.list_mailboxes(user.id)
    page, after = paginate(mailboxes, lambda mailbox: mailbox.name, str, limit, cursor)
    items = []
    for mailbox in page:
        try:
            items.append(await _status(ctx.store, user.id, mailbox.name))
        except MailboxNotFound:
            continue  # deleted since it was listed
    return s.MailboxPage(items=items, next_cursor=after)


@router.post(
    _MAILBOXES, status_code=201, tags=["mailboxes"], responses=responses(404, 409, 413, 422)
)
async def create_mailbox(ctx: Context, address: Address, body: s.MailboxIn) -> s.Mailbox:
    """Create a mailbox (and the levels above it that are missing)."""
    user = await _user(ctx, address)
    mailbox = await ctx.store.create_mailbox(user.id, body.name)
    return await _status(ctx.store, user.id, mailbox.name)


@router.patch(
    _MAILBOXES + "/{name:path}", tags=["mailboxes"], responses=responses(404, 409, 413, 422)
)
async def rename_mailbox(
    ctx: Context, address: Address, name: MailboxName, body: s.MailboxPatch
) -> s.Mailbox:
    """Rename a mailbox with the levels below it (IMAP RENAME; INBOX's messages move)."""
    user = await _user(ctx, address)
    await ctx.store.rename_mailbox(user.id, name, body.name)
    return await _status(ctx.store, user.id, body.name)


@delete_route(router, _MAILBOXES + "/{name:path}", "mailboxes", 404, 409, 422)
async def delete_mailbox(ctx: Context, address: Address, name: MailboxName) -> Response:
    """Delete a mailbox; its messages are soft-deleted. INBOX cannot be deleted (409)."""
    user = await _user(ctx, address)
    await ctx.store.delete_mailbox(user.id, name)
    return Response(status_code=204)


# -- deleted messages -------------------------------------------------------------------------


@router.get("/users/{address}/deleted", tags=["deleted"], responses=responses(404, 422))
async def list_deleted(
    ctx: Context, address: Address, limit: Limit = 100, cursor: Cursor = None
) -> s.DeletedPage:
    """The user's soft-deleted messages that can still be restored, oldest id first."""
    user = await _user(ctx, address)
    after = decode_cursor(cursor, int) or 0
    found = await ctx.store.list_deleted(user.id, after_id=after, limit=limit + 1)
    page = found[:limit]
    return s.DeletedPage(
        items=[s.DeletedMessage.model_validate(item) for item in page],
        next_cursor=encode_cursor(page[-1].id) if len(found) > limit else None,
    )


@router.post(
    "/users/{address}/deleted/{id}/restore",
    tags=["deleted"],
    responses=responses(404, 409, 422),
)
async def restore_message(ctx: Context, address: Address, id: ItemId) -> s.Restored:
    """Undelete a message into the mailbox it came from, with a new UID; 404 once the
    GC has taken it or its mailbox is gone, 409 if it no longer fits the quota."""
    user = await _user(ctx, address)
    result = await ctx.store.restore(user.id, id)
    mailbox = await ctx.store.mailbox_by_id(user.id, result.mailbox_id)
    return s.Restored(id=id, mailbox=mailbox.name, uidvalidity=result.uidvalidity, uid=result.uid)
