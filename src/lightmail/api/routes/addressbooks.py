"""A user's address books: ``/users/{address}/addressbooks``, and each as one ``.vcf`` file.

The same address books CardDAV serves (:mod:`lightmail.dav`), changed through
the same store (``accounts.contacts``), so clients see an operator's changes
at their next sync. Import and export work as for calendars
(:mod:`.calendars`): an import stores one object per vCard UID, all or none
(422); an export is every vCard, one after the other.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from lightmail.api import schemas as s
from lightmail.api.deps import Address, Context, Cursor, Limit, delete_route
from lightmail.api.errors import responses
from lightmail.api.routes.calendars import VCARD, export_file, import_file, list_page
from lightmail.api.routes.calendars import CalendarName as BookName
from lightmail.api.routes.mail import raw_body, raw_response

router = APIRouter()

_BOOKS = "/users/{address}/addressbooks"
_BOOK = _BOOKS + "/{name}"
_TAG = "address books"


@router.get(_BOOKS, tags=[_TAG], responses=responses(404, 422))
async def list_addressbooks(
    ctx: Context, address: Address, limit: Limit = 100, cursor: Cursor = None
) -> s.AddressBookPage:
    return await list_page(ctx, ctx.accounts.contacts, address, limit, cursor, s.AddressBookPage)


@router.post(_BOOKS, status_code=201, tags=[_TAG], responses=responses(404, 409, 422))
async def create_addressbook(
    ctx: Context, address: Address, body: s.AddressBookIn
) -> s.AddressBook:
    """A new, empty address book (409 if the user has one by that name)."""
    user = await ctx.accounts.get_user(address)
    book = await ctx.accounts.contacts.create_calendar(
        user.id, body.name, display_name=body.display_name, description=body.description
    )
    return s.AddressBook.model_validate(book)


@router.get(_BOOK, tags=[_TAG], responses=responses(404, 422))
async def get_addressbook(ctx: Context, address: Address, name: BookName) -> s.AddressBook:
    user = await ctx.accounts.get_user(address)
    return s.AddressBook.model_validate(await ctx.accounts.contacts.get_calendar(user.id, name))


@delete_route(router, _BOOK, _TAG, 404, 422)
async def delete_addressbook(ctx: Context, address: Address, name: BookName) -> Response:
    """Delete an address book; its vCards are purged by the garbage collector after
    retention."""
    user = await ctx.accounts.get_user(address)
    await ctx.accounts.contacts.delete_calendar(user.id, name)
    return Response(status_code=204)


@router.post(
    _BOOK + "/import",
    tags=[_TAG],
    responses=responses(404, 413, 415, 422),
    openapi_extra=raw_body(VCARD, "vCards (RFC 6350 or 2426), one after the other."),
)
async def import_vcf(
    ctx: Context, request: Request, address: Address, name: BookName
) -> s.CalendarImported:
    """Store each vCard of the file as one object of the address book, replacing the
    one with its UID; all or nothing (422 names the first vCard that is invalid)."""
    return await import_file(ctx, request, address, name, ctx.accounts.contacts)


@router.get(
    _BOOK + "/export",
    tags=[_TAG],
    response_class=Response,
    responses=raw_response(
        VCARD, "Every vCard of the address book, one after the other.", 404, 422
    ),
)
async def export_vcf(ctx: Context, address: Address, name: BookName) -> Response:
    return await export_file(ctx, address, name, ctx.accounts.contacts)
