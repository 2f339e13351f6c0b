"""A user's calendars: ``/users/{address}/calendars``, and each as one ``.ics`` file.

The same calendars CalDAV serves (:mod:`lightmail.dav`), changed through the
same store, so clients see an operator's changes at their next sync. An
import splits one VCALENDAR into an object per UID and stores all of them in
one transaction, or none when one is invalid (422); an export is one
VCALENDAR with every object and each VTIMEZONE once.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Request, Response
from starlette.requests import ClientDisconnect

from lightmail.api import schemas as s
from lightmail.api.deps import Address, Context, Cursor, Limit, delete_route, paginate
from lightmail.api.errors import ApiError, responses
from lightmail.api.routes.mail import raw_body, raw_response, require_media_type
from lightmail.calendars.store import CalendarStore
from lightmail.calendars.transfer import export_calendar, import_calendar

router = APIRouter()

_Page = TypeVar("_Page", s.CalendarPage, s.AddressBookPage)

ICALENDAR = "text/calendar"
VCARD = "text/vcard"
_MEDIA_TYPES = {".ics": ICALENDAR, ".vcf": VCARD}
_CALENDARS = "/users/{address}/calendars"
_CALENDAR = _CALENDARS + "/{name}"

CalendarName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=r"^[^/]+$",
        description=(
            "The calendar's or address book's path segment (`default` for the one every user has)."
        ),
        examples=["default"],
    ),
]


@router.get(_CALENDARS, tags=["calendars"], responses=responses(404, 422))
async def list_calendars(
    ctx: Context, address: Address, limit: Limit = 100, cursor: Cursor = None
) -> s.CalendarPage:
    return await list_page(ctx, ctx.accounts.calendars, address, limit, cursor, s.CalendarPage)


async def list_page(
    ctx: Context,
    store: CalendarStore,
    address: str,
    limit: int,
    cursor: str | None,
    page_type: type[_Page],
) -> _Page:
    """A page of the user's calendars or address books, by name, as ``page_type``."""
    user = await ctx.accounts.get_user(address)
    collections = await store.list_calendars(user.id)
    page, after = paginate(collections, lambda collection: collection.name, str, limit, cursor)
    return page_type.model_validate({"items": page, "next_cursor": after})


@router.post(
    _CALENDARS, status_code=201, tags=["calendars"], responses=responses(404, 409, 413, 422)
)
async def create_calendar(ctx: Context, address: Address, body: s.CalendarIn) -> s.Calendar:
    """A new, empty calendar (409 if the user has one by that name)."""
    user = await ctx.accounts.get_user(address)
    calendar = await ctx.accounts.calendars.create_calendar(
        user.id,
        body.name,
        display_name=body.display_name,
        color=body.color,
        description=body.description,
        components=body.components,
    )
    return s.Calendar.model_validate(calendar)


@router.get(_CALENDAR, tags=["calendars"], responses=responses(404, 422))
async def get_calendar(ctx: Context, address: Address, name: CalendarName) -> s.Calendar:
    user = await ctx.accounts.get_user(address)
    return s.Calendar.model_validate(await ctx.accounts.calendars.get_calendar(user.id, name))


@delete_route(router, _CALENDAR, "calendars", 404, 422)
async def delete_calendar(ctx: Context, address: Address, name: CalendarName) -> Response:
    """Delete a calendar; its objects are purged by the garbage collector after retention."""
    user = await ctx.accounts.get_user(address)
    await ctx.accounts.calendars.delete_calendar(user.id, name)
    return Response(status_code=204)


@router.post(
    _CALENDAR + "/import",
    tags=["calendars"],
    responses=responses(404, 413, 415, 422),
    openapi_extra=raw_body(ICALENDAR, "One VCALENDAR (RFC 5545) with any number of components."),
)
async def import_ics(
    ctx: Context, request: Request, address: Address, name: CalendarName
) -> s.CalendarImported:
    """Store each UID of the file as one object of the calendar, replacing an object
    with that UID; all or nothing (422 names the first object that is invalid)."""
    return await import_file(ctx, request, address, name, ctx.accounts.calendars)


async def import_file(
    ctx: Context, request: Request, address: str, name: str, store: CalendarStore
) -> s.CalendarImported:
    """An import into a calendar or address book: the body, within ``[dav]
    max_import_size``, in the kind's media type, split and stored all or nothing."""
    limit = ctx.settings.dav.max_import_size
    label = store.kind.label
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(label, limit)
    user = await ctx.accounts.get_user(address)
    require_media_type(request, _MEDIA_TYPES[store.kind.suffix])
    data = bytearray()
    try:
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise _too_large(label, limit)
    except ClientDisconnect:
        raise ApiError(422, "invalid_request", "The request body ended early.") from None
    report = await import_calendar(store, user.id, name, bytes(data))
    return s.CalendarImported(created=report.created, replaced=report.replaced)


def _too_large(label: str, limit: int) -> ApiError:
    return ApiError(413, "too_large", f"The {label} is over {limit} bytes ([dav] max_import_size).")


@router.get(
    _CALENDAR + "/export",
    tags=["calendars"],
    response_class=Response,
    responses=raw_response(ICALENDAR, "One VCALENDAR with every object of the calendar.", 404, 422),
)
async def export_ics(ctx: Context, address: Address, name: CalendarName) -> Response:
    return await export_file(ctx, address, name, ctx.accounts.calendars)


async def export_file(ctx: Context, address: str, name: str, store: CalendarStore) -> Response:
    """A calendar or address book as one file, offered for download."""
    user = await ctx.accounts.get_user(address)
    data = await export_calendar(store, user.id, name)
    suffix = store.kind.suffix
    return Response(
        data,
        media_type=_MEDIA_TYPES[suffix],
        headers={"Content-Disposition": f'attachment; filename="{_filename(name)}{suffix}"'},
    )


def _filename(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
