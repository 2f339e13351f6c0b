"""One CalDAV or CardDAV request as the method handlers see it, and what they share."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from lightmail.accounts.service import User
from lightmail.calendars.rows import CalendarInfo
from lightmail.calendars.store import CalendarStore
from lightmail.config import DavSettings
from lightmail.dav import xml
from lightmail.dav.resources import Context, Space, Target


class BodyTooLarge(Exception):
    """A request body over its limit (answered 413)."""


class DavError(Exception):
    """An answer other than success: ``status``, and the precondition element
    (namespace, name) for a ``DAV:error`` body, with ``href`` inside it if given,
    or plain ``text``."""

    def __init__(
        self,
        status: int,
        text: str = "",
        condition: tuple[str, str] | None = None,
        href: str | None = None,
    ) -> None:
        super().__init__(text or (condition[1] if condition else str(status)))
        self.status = status
        self.text = text
        self.condition = condition
        self.href = href


@dataclass(frozen=True, slots=True)
class Call:
    request: Request
    user: User
    target: Target
    calendars: CalendarStore
    contacts: CalendarStore
    settings: DavSettings

    @property
    def store(self) -> CalendarStore:
        """The store of the target's collections: calendars or address books."""
        return self.contacts if self.address_books else self.calendars

    @property
    def address_books(self) -> bool:
        return self.target.space is Space.ADDRESSBOOKS

    @property
    def context(self) -> Context:
        return Context(self.user.address, self.settings.max_object_size)

    async def body(self, limit: int) -> bytes:
        """The request body, at most ``limit`` bytes (else BodyTooLarge, read no further)."""
        declared = self.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge(f"the request body is larger than {limit} bytes")
        parts: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the request body is larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def xml(self) -> ET.Element | None:
        """The request body as XML (None when empty), within ``[dav] max_xml_size``."""
        return xml.parse(await self.body(self.settings.max_xml_size))

    def depth(self, default: str) -> str:
        """The Depth header: ``0``, ``1`` or ``infinity`` (RFC 4918 section 10.2)."""
        depth = self.request.headers.get("depth", default).strip().lower()
        if depth not in ("0", "1", "infinity"):
            raise DavError(400, "Depth must be 0, 1 or infinity")
        return depth

    async def calendar(self) -> CalendarInfo:
        return await self.store.get_calendar(self.user.id, self.target.calendar)


Handler = Callable[[Call], Awaitable[Response]]


def xml_response(body: bytes, status: int = 207) -> Response:
    return Response(body, status_code=status, media_type="application/xml; charset=utf-8")
