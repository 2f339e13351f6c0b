"""REPORT on a calendar: calendar-multiget and calendar-query (RFC 4791 sections 7.8
and 7.9) and sync-collection (RFC 6578); on an address book: addressbook-multiget,
addressbook-query (RFC 6352 sections 8.6 and 8.7) and sync-collection, through the
same multiget, sync and response code.

calendar-query takes one component filter (VEVENT, VTODO or VJOURNAL) inside
VCALENDAR, with an optional time-range and prop-filters that are present,
absent or a text-match. The time-range is answered in SQL for objects that
do not recur; a recurring candidate is expanded
(:func:`lightmail.calendars.ics.series_overlaps`). Anything else in a filter
is refused with ``CALDAV:supported-filter``. Expanding and matching run in a
thread, so a long series does not hold up the node's other connections.
addressbook-query reads and parses each vCard of the address book (an address
book is small next to a calendar) and matches it against the CARDDAV:filter
(:mod:`lightmail.calendars.vcard`), up to the client's limit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from urllib.parse import unquote, urlsplit

from starlette.responses import Response

from lightmail.calendars.ics import (
    COMPONENTS,
    PropFilter,
    expand,
    matches_properties,
    overlaps,
    series_overlaps,
)
from lightmail.calendars.rows import CalendarInfo, CalendarObject
from lightmail.calendars.vcard import CardFilter, VCard, parse_vcard
from lightmail.dav import carddav, xml
from lightmail.dav.call import Call, DavError, xml_response
from lightmail.dav.carddav import CR
from lightmail.dav.resources import (
    C,
    D,
    Kind,
    calendar_path,
    object_path,
    object_properties,
    parse_sync_token,
    select_properties,
    sync_token,
)
from lightmail.dav.xml import CALDAV, DAV, tag
from lightmail.errors import InvalidAddressData, InvalidValue

_UNSUPPORTED_FILTER = (CALDAV, "supported-filter")
C_COMP_FILTER = tag(CALDAV, "comp-filter")


async def report(call: Call) -> Response:
    root = await call.xml()
    if root is None:
        raise DavError(400, "REPORT needs a body")
    if call.target.kind is not Kind.CALENDAR:
        raise DavError(403, "reports are run on a collection", (DAV, "supported-report"))
    calendar = await call.calendar()
    multiget, query = (
        (CR["addressbook-multiget"], CR["addressbook-query"])
        if call.address_books
        else (tag(CALDAV, "calendar-multiget"), tag(CALDAV, "calendar-query"))
    )
    if root.tag == multiget:
        return await _multiget(call, calendar, root)
    if root.tag == query and call.address_books:
        return await _addressbook_query(call, calendar, root)
    if root.tag == query:
        return await _query(call, calendar, root)
    if root.tag == tag(DAV, "sync-collection"):
        return await _sync(call, calendar, root)
    raise DavError(403, "unsupported report", (DAV, "supported-report"))


async def _multiget(call: Call, calendar: CalendarInfo, root: ET.Element) -> Response:
    base = calendar_path(call.user.address, calendar.name, call.target.space)
    names: dict[str, str] = {}  # name -> href as given
    responses: list[ET.Element] = []
    for node in root.findall(D["href"]):
        given = (node.text or "").strip()
        path = unquote(urlsplit(given).path)
        name = path.removeprefix(unquote(base)) if path.startswith(unquote(base)) else ""
        if not name or "/" in name:
            responses.append(xml.status_response(given, 404))
        else:
            names[name] = given
    found = await call.store.objects_named(calendar, list(names))
    responses.extend(await _responses(call, calendar, found, root.find(D["prop"])))
    present = {obj.name for obj in found}
    responses.extend(
        xml.status_response(given, 404) for name, given in names.items() if name not in present
    )
    return xml_response(xml.multistatus(responses))


async def _query(call: Call, calendar: CalendarInfo, root: ET.Element) -> Response:
    component, start, end, filters = _filter(root.find(C["filter"]))
    if component is None:
        objects = await call.calendars.list_objects(calendar)
    else:
        objects = await call.calendars.objects_in_range(calendar, component, start, end)
    matching: list[CalendarObject] = []
    for obj in objects:
        if (start is not None or end is not None) and obj.recurring:
            low, high = start or datetime.min, end or datetime.max
            data = await call.calendars.read_bytes(obj)
            if not await asyncio.to_thread(series_overlaps, data, obj.component, low, high):
                continue
        elif (
            start is not None
            and end is not None
            and not overlaps(obj.first_start, obj.last_end, start, end)
        ):
            continue
        if filters and not await asyncio.to_thread(
            matches_properties, await call.calendars.read_bytes(obj), obj.component, filters
        ):
            continue
        matching.append(obj)
    return xml_response(
        xml.multistatus(await _responses(call, calendar, matching, root.find(D["prop"])))
    )


def _filter(
    node: ET.Element | None,
) -> tuple[str | None, datetime | None, datetime | None, list[PropFilter]]:
    """The component, time range and prop-filters of a CALDAV:filter."""
    if node is None:
        raise DavError(400, "calendar-query needs a filter", (CALDAV, "valid-filter"))
    outer = node.findall(C_COMP_FILTER)
    if len(outer) != 1 or outer[0].get("name", "").upper() != "VCALENDAR":
        raise DavError(403, "the filter must hold one VCALENDAR", (CALDAV, "valid-filter"))
    calendar_filter = outer[0]
    if any(child.tag != C_COMP_FILTER for child in calendar_filter):
        raise DavError(403, "only component filters in VCALENDAR", _UNSUPPORTED_FILTER)
    inner = calendar_filter.findall(C_COMP_FILTER)
    if not inner:
        return None, None, None, []
    if len(inner) > 1:
        raise DavError(403, "one component filter at a time", _UNSUPPORTED_FILTER)
    comp = inner[0]
    component = comp.get("name", "").upper()
    if component not in COMPONENTS:
        raise DavError(403, f"no such component {component[:20]}", _UNSUPPORTED_FILTER)
    start = end = None
    filters: list[PropFilter] = []
    for child in comp:
        if child.tag == tag(CALDAV, "time-range"):
            start, end = _time(child.get("start")), _time(child.get("end"))
        elif child.tag == tag(CALDAV, "prop-filter"):
            filters.append(_prop_filter(child))
        else:
            raise DavError(403, "unsupported component filter", _UNSUPPORTED_FILTER)
    return component, start, end, filters


def _prop_filter(node: ET.Element) -> PropFilter:
    name = node.get("name", "").upper()
    children = list(node)
    if not name or len(children) > 1:
        raise DavError(403, "a prop-filter takes one test", _UNSUPPORTED_FILTER)
    if not children:
        return PropFilter(name)
    (test,) = children
    if test.tag == tag(CALDAV, "is-not-defined"):
        return PropFilter(name, is_not_defined=True)
    if test.tag != tag(CALDAV, "text-match"):
        raise DavError(403, "only is-not-defined and text-match", _UNSUPPORTED_FILTER)
    collation = test.get("collation", "i;ascii-casemap")
    if collation not in ("i;ascii-casemap", "i;octet"):
        raise DavError(403, "unsupported collation", (CALDAV, "supported-collation"))
    return PropFilter(
        name,
        text=test.text or "",
        negate=test.get("negate-condition", "no") == "yes",
        case_sensitive=collation == "i;octet",
    )


def _time(value: str | None) -> datetime | None:
    """A time-range bound: a UTC date-time such as 20260105T000000Z (RFC 4791 9.9)."""
    if value is None:
        return None
    try:
        return datetime.strptime(value.strip(), "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise DavError(
            403, "time-range bounds are UTC date-times", (CALDAV, "valid-filter")
        ) from None


async def _sync(call: Call, calendar: CalendarInfo, root: ET.Element) -> Response:
    """RFC 6578 section 3.2: every member for an empty token, else what changed."""
    given = (root.findtext(D["sync-token"]) or "").strip()
    level = (root.findtext(tag(DAV, "sync-level")) or "1").strip()
    if level != "1":
        raise DavError(403, "sync-level 1 only", (DAV, "sync-traversal-supported"))
    if given:
        since = parse_sync_token(calendar, given)
        if since is None:
            raise DavError(403, "unknown sync token", (DAV, "valid-sync-token"))
        try:
            changes = await call.store.changes(calendar, since)
        except InvalidValue:
            raise DavError(403, "sync token too old", (DAV, "valid-sync-token")) from None
        changed, removed, token = changes.changed, changes.removed, changes.token
    else:  # every member; the token read before them, so none is missed next time
        changed = await call.store.list_objects(calendar)
        removed, token = [], calendar.sync_token
    responses = await _responses(call, calendar, changed, root.find(D["prop"]))
    responses.extend(
        xml.status_response(
            object_path(call.user.address, calendar.name, name, call.target.space), 404
        )
        for name in removed
    )
    current = dataclasses.replace(calendar, sync_token=token)
    return xml_response(
        xml.multistatus(responses, xml.element(D["sync-token"], text=sync_token(current)))
    )


async def _addressbook_query(call: Call, book: CalendarInfo, root: ET.Element) -> Response:
    """RFC 6352 section 8.6: the vCards the filter matches, at most the client's
    limit; a truncated answer says so with a 507 for the address book itself.
    The vCards are read :data:`_READ_AT_ONCE` at a time, and parsed and matched
    in a thread."""
    card_filter = carddav.parse_filter(root.find(CR["filter"]))
    limit = carddav.parse_limit(root)
    matching: list[CalendarObject] = []
    cards: dict[str, VCard] = {}
    objects = await call.store.list_objects(book)
    more = False
    for start in range(0, len(objects), _READ_AT_ONCE):
        chunk = objects[start : start + _READ_AT_ONCE]
        datas = await asyncio.gather(*(call.store.read_bytes(obj) for obj in chunk))
        found = await asyncio.to_thread(_matching_cards, card_filter, datas)
        for obj, card in zip(chunk, found, strict=True):
            if card is None:
                continue
            if len(matching) == limit:
                more = True
                break
            matching.append(obj)
            cards[obj.name] = card
        if more:
            break
    responses = await _responses(call, book, matching, root.find(D["prop"]), cards)
    if more:
        responses.append(
            carddav.truncated(calendar_path(call.user.address, book.name, call.target.space))
        )
    return xml_response(xml.multistatus(responses))


_READ_AT_ONCE = 32


def _matching_cards(card_filter: CardFilter, datas: Sequence[bytes]) -> list[VCard | None]:
    """Each vCard that matches, parsed; None for one that does not, or that no longer
    passes the parser (stored before a stricter check: it matches nothing)."""
    found: list[VCard | None] = []
    for data in datas:
        try:
            card: VCard | None = parse_vcard(data)
        except InvalidAddressData:
            card = None
        found.append(card if card is not None and card_filter.matches(card) else None)
    return found


# The text of an object's CALDAV:calendar-data or CARDDAV:address-data, from its data.
_Render = Callable[[CalendarObject, bytes], Awaitable[str]]


async def _responses(
    call: Call,
    calendar: CalendarInfo,
    objects: Sequence[CalendarObject],
    prop: ET.Element | None,
    cards: dict[str, VCard] | None = None,
) -> list[ET.Element]:
    """A ``DAV:response`` per object with the properties ``prop`` asks for
    (getetag alone when it asks for none), CALDAV:calendar-data or
    CARDDAV:address-data included (``cards``: vCards parsed already, by name)."""
    data_tag = CR["address-data"] if call.address_books else C["calendar-data"]
    wanted = [D["getetag"]] if prop is None else [child.tag for child in prop]
    data_node = None if prop is None else prop.find(data_tag)
    render: _Render | None = None
    if data_node is not None:
        render = (
            _address_data(data_node, cards or {})
            if call.address_books
            else _calendar_data(data_node)
        )
    answers: list[ET.Element] = []
    for obj in objects:
        available = object_properties(call.context, obj)
        found, missing = select_properties(available, [n for n in wanted if n != data_tag])
        if render is not None:
            text = await render(obj, await call.store.read_bytes(obj))
            found.append(xml.element(data_tag, text=text))
        path = object_path(call.user.address, calendar.name, obj.name, call.target.space)
        answers.append(xml.response(path, found, missing))
    return answers


def _calendar_data(data_node: ET.Element) -> _Render:
    """CALDAV:calendar-data: the object as stored, or with a recurring one expanded
    into its instances in the window of a CALDAV:expand (RFC 4791 section 9.6.5)."""
    expand_node = data_node.find(tag(CALDAV, "expand"))
    window = None
    if expand_node is not None:
        low, high = _time(expand_node.get("start")), _time(expand_node.get("end"))
        if low is None or high is None:
            raise DavError(403, "expand needs start and end", (CALDAV, "valid-filter"))
        window = (low, high)

    async def render(obj: CalendarObject, data: bytes) -> str:
        if window is not None and obj.recurring:
            data = await asyncio.to_thread(expand, data, obj.component, *window)
        return data.decode("utf-8", "replace")

    return render


def _address_data(data_node: ET.Element, cards: dict[str, VCard]) -> _Render:
    """CARDDAV:address-data (RFC 6352 section 10.4): the whole vCard, or the
    properties it names."""
    parts = carddav.wanted_properties(data_node)

    async def render(obj: CalendarObject, data: bytes) -> str:
        card = cards.get(obj.name)
        if parts is not None and card is None:
            try:
                card = parse_vcard(data)
            except InvalidAddressData:
                card = None
        return carddav.address_data(card, data, parts)

    return render
