"""The CalDAV and CardDAV ASGI application: login, routing by method, and the one error
mapping.

Every request but OPTIONS and ``/.well-known/caldav`` or ``/.well-known/carddav``
(RFC 6764 section 5: a redirect to ``/``, where discovery starts) needs HTTP Basic with a mail
account's address and password (RFC 7617), checked by
:meth:`Accounts.authenticate <lightmail.accounts.service.Accounts.authenticate>`:
the same throttling, failure delay and credential cache as IMAP and POP3.
Over plain HTTP a login is accepted only from ``[dav] plaintext_networks``.
A user reaches only paths under their own address; any other is 403.

Errors of :mod:`lightmail.errors` become answers in :func:`_answer_error`,
the one mapping: a storage outage is 503 with ``Retry-After``, a broken
CalDAV or CardDAV precondition 403 with its ``DAV:error`` element, and anything
unexpected is logged and answered 500 without its text.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lightmail.accounts.service import Accounts, User
from lightmail.auth.throttle import IPAddress
from lightmail.calendars.store import CalendarStore
from lightmail.config import DavSettings
from lightmail.dav import methods, reports
from lightmail.dav.call import BodyTooLarge, Call, DavError, Handler, xml_response
from lightmail.dav.resources import Kind, locate
from lightmail.dav.xml import CALDAV, CARDDAV, DAV, XmlRefused, error
from lightmail.errors import (
    AlreadyExists,
    AuthenticationFailed,
    InvalidAddressData,
    InvalidCalendarData,
    InvalidValue,
    NotFound,
    PreconditionFailed,
    TemporaryFailure,
)
from lightmail.metrics import DAV_REQUEST_SECONDS, DAV_REQUESTS

log = logging.getLogger(__name__)

WELL_KNOWN = ("/.well-known/caldav", "/.well-known/carddav")
_REALM = 'Basic realm="LightMail", charset="UTF-8"'
_ALLOW = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, MKCALENDAR, REPORT"
_DAV_CLASSES = "1, 3, calendar-access, addressbook, extended-mkcol"

_HANDLERS: dict[str, Handler] = {
    "PROPFIND": methods.propfind,
    "PROPPATCH": methods.proppatch,
    "MKCALENDAR": methods.mkcalendar,
    "MKCOL": methods.mkcol,
    "PUT": methods.put,
    "GET": methods.get,
    "HEAD": methods.get,
    "DELETE": methods.delete,
    "REPORT": reports.report,
}
_COUNTED = frozenset({*_HANDLERS, "OPTIONS"})  # the methods metrics name
# The methods that make a resource: below a missing collection they get 409.
_CREATING = frozenset({"PUT", "MKCOL", "MKCALENDAR"})


class DavApp:
    """The ASGI app; ``calendars`` and ``contacts`` are the node's one calendar and
    address book stores."""

    def __init__(self, accounts: Accounts, settings: DavSettings) -> None:
        self.accounts = accounts
        self.calendars: CalendarStore = accounts.calendars
        self.contacts: CalendarStore = accounts.contacts
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        method = request.method if request.method in _COUNTED else "other"
        status = 500
        try:
            with DAV_REQUEST_SECONDS.labels(method).time():
                try:
                    answer = await self._answer(request)
                except Exception as exc:
                    answer = _answer_error(exc, request)
                status = answer.status_code
                if request.method == "HEAD":
                    answer.body = b""
                await answer(scope, receive, send)
        finally:
            DAV_REQUESTS.labels(method, str(status)).inc()

    async def _answer(self, request: Request) -> Response:
        path = request.url.path
        if path.rstrip("/") in WELL_KNOWN:
            return Response(status_code=301, headers={"Location": "/"})
        if request.method == "OPTIONS":
            return Response(headers={"DAV": _DAV_CLASSES, "Allow": _ALLOW})
        user = await self._login(request)
        if user is None:
            return Response(
                b"log in with the mail account's address and password\n",
                status_code=401,
                headers={"WWW-Authenticate": _REALM},
            )
        target = locate(path)
        if target is None:
            return Response(b"no such resource\n", status_code=404)
        if target.kind is not Kind.ROOT and target.owner.lower() != user.address:
            return Response(b"only your own calendars and address books\n", status_code=403)
        handler = _HANDLERS.get(request.method)
        if handler is None:
            return Response(status_code=405, headers={"Allow": _ALLOW})
        if target.kind is Kind.NESTED and request.method not in _CREATING:
            return Response(b"no such resource\n", status_code=404)
        call = Call(request, user, target, self.calendars, self.contacts, self.settings)
        return await handler(call)

    async def _login(self, request: Request) -> User | None:
        """The account the Basic credentials name, or None to ask for them."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        address, colon, password = decoded.partition(":")
        if not colon:
            return None
        client = _client_ip(request)
        if request.url.scheme != "https" and not (
            request.client is None  # a unix socket: as local as loopback
            or (client is not None and self.settings.plaintext_allowed(client))
        ):
            raise _PlaintextRefused()
        try:
            return await self.accounts.authenticate(address, password, client)
        except AuthenticationFailed:
            return None


def _client_ip(request: Request) -> IPAddress | None:
    """The client's address; None on a unix socket, or if it is not an address."""
    if request.client is None:
        return None
    try:
        return ipaddress.ip_address(request.client.host)
    except ValueError:
        return None


class _PlaintextRefused(Exception):
    """A login over plain HTTP from outside ``[dav] plaintext_networks``."""


def _answer_error(exc: Exception, request: Request) -> Response:
    """The one mapping from an error to an answer."""
    match exc:
        case DavError():
            if exc.condition is None:
                return Response(exc.text.encode() + b"\n", status_code=exc.status)
            return xml_response(error(*exc.condition), exc.status)
        case InvalidAddressData():
            return xml_response(error(CARDDAV, exc.precondition), 403)
        case InvalidCalendarData():
            return xml_response(error(CALDAV, exc.precondition), 403)
        case PreconditionFailed():
            return Response(f"{exc}\n".encode(), status_code=412)
        case NotFound():
            return Response(b"no such resource\n", status_code=404)
        case AlreadyExists():
            return xml_response(error(DAV, "resource-must-be-null"), 405)
        case InvalidValue():
            return Response(f"{exc}\n".encode(), status_code=400)
        case XmlRefused():
            return Response(f"{exc}\n".encode(), status_code=400)
        case BodyTooLarge():
            return Response(f"{exc}\n".encode(), status_code=413)
        case _PlaintextRefused():
            return Response(b"log in over HTTPS\n", status_code=403)
        case TemporaryFailure():
            return Response(
                b"temporarily unavailable, try again later\n",
                status_code=503,
                headers={"Retry-After": "30"},
            )
    log.exception("dav: %s %s failed", request.method, request.url.path, exc_info=exc)
    return Response(b"internal error\n", status_code=500)
