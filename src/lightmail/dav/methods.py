"""The WebDAV and CalDAV methods but REPORT: PROPFIND, PROPPATCH, MKCALENDAR, MKCOL,
PUT, GET (and HEAD) and DELETE (RFC 4918, RFC 4791 section 5.3, RFC 5689)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Literal

from starlette.responses import Response

from lightmail.dav import xml
from lightmail.dav.call import Call, DavError, xml_response
from lightmail.dav.resources import (
    CALENDAR_COLOR,
    C,
    D,
    Kind,
    PropertyMap,
    calendar_path,
    calendar_properties,
    home_path,
    home_properties,
    object_path,
    object_properties,
    principal_path,
    principal_properties,
    root_properties,
    select_properties,
)
from lightmail.dav.xml import CALDAV, DAV, tag
from lightmail.errors import NotFound

Wanted = list[str] | None | Literal["propname"]

# The properties a client may set on a calendar, and the store's name for each.
_WRITABLE = {
    D["displayname"]: "display_name",
    C["calendar-description"]: "description",
    CALENDAR_COLOR: "color",
}


# -- PROPFIND ---------------------------------------------------------------------


async def propfind(call: Call) -> Response:
    """RFC 4918 section 9.1; Depth infinity is refused (``propfind-finite-depth``)."""
    if call.depth("infinity") == "infinity":
        raise DavError(403, condition=(DAV, "propfind-finite-depth"))
    wanted = _wanted(await call.xml())
    responses = []
    for path, available in await _resources(call, call.depth("infinity") == "1"):
        if wanted == "propname":
            responses.append(xml.response(path, [ET.Element(name) for name in available], []))
            continue
        found, missing = select_properties(available, wanted)
        responses.append(xml.response(path, found, missing))
    return xml_response(xml.multistatus(responses))


def _wanted(root: ET.Element | None) -> Wanted:
    if root is None:
        return None  # an empty PROPFIND is allprop (RFC 4918 section 9.1)
    if root.tag != tag(DAV, "propfind"):
        raise DavError(400, "the body must be a DAV:propfind")
    for child in root:
        if child.tag == tag(DAV, "prop"):
            return [prop.tag for prop in child]
        if child.tag == tag(DAV, "propname"):
            return "propname"
        if child.tag == tag(DAV, "allprop"):
            return None
    raise DavError(400, "DAV:propfind needs prop, propname or allprop")


async def _resources(call: Call, children: bool) -> list[tuple[str, PropertyMap]]:
    """The target (and with ``children`` its members) with their properties."""
    context, target, user = call.context, call.target, call.user
    match target.kind:
        case Kind.ROOT:
            return [("/", root_properties(context))]
        case Kind.PRINCIPAL:
            return [(principal_path(user.address), principal_properties(context))]
        case Kind.HOME:
            found = [(home_path(user.address), home_properties(context))]
            if children:
                for calendar in await call.calendars.list_calendars(user.id):
                    found.append(
                        (
                            calendar_path(user.address, calendar.name),
                            calendar_properties(context, calendar),
                        )
                    )
            return found
        case Kind.CALENDAR:
            calendar = await call.calendar()
            found = [
                (calendar_path(user.address, calendar.name), calendar_properties(context, calendar))
            ]
            if children:
                for obj in await call.calendars.list_objects(calendar):
                    found.append(
                        (
                            object_path(user.address, calendar.name, obj.name),
                            object_properties(context, obj),
                        )
                    )
            return found
        case Kind.OBJECT:
            calendar = await call.calendar()
            obj = await call.calendars.get_object(calendar, target.name)
            return [
                (
                    object_path(user.address, calendar.name, obj.name),
                    object_properties(context, obj),
                )
            ]
        case Kind.NESTED:  # the app answers 404 before a PROPFIND gets here
            raise DavError(404, "no such resource")


# -- PROPPATCH, MKCALENDAR, MKCOL ---------------------------------------------------------


async def proppatch(call: Call) -> Response:
    """RFC 4918 section 9.2 on a calendar: all changes or none."""
    if call.target.kind is not Kind.CALENDAR:
        raise DavError(403, "only a calendar's properties can be changed")
    root = await call.xml()
    if root is None or root.tag != tag(DAV, "propertyupdate"):
        raise DavError(400, "the body must be a DAV:propertyupdate")
    calendar = await call.calendar()
    changes: dict[str, str] = {}
    names: list[str] = []
    for instruction in root:
        if instruction.tag not in (tag(DAV, "set"), tag(DAV, "remove")):
            continue
        for prop in instruction.findall(D["prop"]):
            for item in prop:
                names.append(item.tag)
                if item.tag in _WRITABLE:
                    value = (item.text or "") if instruction.tag == tag(DAV, "set") else ""
                    changes[_WRITABLE[item.tag]] = value
    refused = [name for name in names if name not in _WRITABLE]
    path = calendar_path(call.user.address, calendar.name)
    if refused:
        statuses = [
            xml.propstat([ET.Element(name)], 403 if name in refused else 424) for name in names
        ]
        return xml_response(
            xml.multistatus([xml.element(tag(DAV, "response"), xml.href(path), *statuses)])
        )
    await call.calendars.update_calendar(call.user.id, calendar.name, **changes)
    return xml_response(
        xml.multistatus(
            [
                xml.element(
                    tag(DAV, "response"),
                    xml.href(path),
                    xml.propstat([ET.Element(name) for name in names], 200),
                )
            ]
        )
    )


async def mkcalendar(call: Call) -> Response:
    """RFC 4791 section 5.3.1."""
    root = await call.xml()
    if root is not None and root.tag != tag(CALDAV, "mkcalendar"):
        raise DavError(400, "the body must be a CALDAV:mkcalendar")
    return await _create_calendar(call, root)


async def mkcol(call: Call) -> Response:
    """Extended MKCOL (RFC 5689) of a calendar; a plain collection is refused."""
    await _check_location(call)
    root = await call.xml()
    if root is None or root.tag != tag(DAV, "mkcol"):
        raise DavError(403, "only calendars can be created here", (DAV, "valid-resourcetype"))
    kinds = {kind.tag for kind in root.iterfind(f"*/{D['prop']}/{D['resourcetype']}/*")}
    if C["calendar"] not in kinds:
        raise DavError(403, "only calendars can be created here", (DAV, "valid-resourcetype"))
    return await _create_calendar(call, root)


async def _check_location(call: Call) -> None:
    """Raise unless a calendar may be made at the target, which is in the calendar home.

    Below a calendar that does not exist, or deeper than a calendar's members,
    an intermediate collection is missing: 409 (RFC 4918 section 9.3.1). A
    calendar's member cannot be a calendar: 403 (RFC 4791 section 5.3.1,
    ``calendar-collection-location-ok``).
    """
    match call.target.kind:
        case Kind.CALENDAR:
            return
        case Kind.OBJECT | Kind.NESTED:
            try:
                await call.calendar()
            except NotFound:
                raise DavError(409, f"there is no calendar {call.target.calendar}") from None
            if "/" in call.target.name.rstrip("/"):
                raise DavError(409, f"there is no collection {call.target.name.rsplit('/', 1)[0]}")
            raise DavError(
                403,
                "a calendar cannot hold a collection",
                (CALDAV, "calendar-collection-location-ok"),
            )
    raise DavError(403, "calendars are made in the calendar home", (DAV, "resource-must-be-null"))


async def _create_calendar(call: Call, root: ET.Element | None) -> Response:
    await _check_location(call)
    values: dict[str, str] = {}
    components: list[str] | None = None
    props = [] if root is None else root.iterfind(f"{D['set']}/{D['prop']}/*")
    for prop in props:
        if prop.tag in _WRITABLE:
            values[_WRITABLE[prop.tag]] = prop.text or ""
        elif prop.tag == C["supported-calendar-component-set"]:
            components = [comp.get("name", "") for comp in prop.findall(C["comp"])]
    calendar = await call.calendars.create_calendar(
        call.user.id,
        call.target.calendar,
        display_name=values.get("display_name", ""),
        color=values.get("color", ""),
        description=values.get("description", ""),
        **({} if components is None else {"components": components}),
    )
    return Response(
        status_code=201,
        headers={"Location": calendar_path(call.user.address, calendar.name)},
    )


# -- PUT, GET, DELETE -----------------------------------------------------------------------


async def put(call: Call) -> Response:
    """RFC 4791 section 5.3.2, with If-Match and If-None-Match (412 when they fail).

    Into a calendar that does not exist, or below a calendar's members, it is
    409: the parent collection is missing (RFC 4918 section 9.7.1).
    """
    if call.target.kind is Kind.NESTED:
        raise DavError(409, f"there is no collection {call.target.name.rstrip('/')}")
    if call.target.kind is not Kind.OBJECT:
        raise DavError(405, "PUT stores calendar objects inside a calendar")
    media = call.request.headers.get("content-type", "text/calendar").split(";")[0].strip()
    if media.lower() != "text/calendar":
        raise DavError(
            403, "calendar objects are text/calendar", (CALDAV, "supported-calendar-data")
        )
    data = await call.body(call.settings.max_object_size)
    if_match = call.request.headers.get("if-match")
    if_none_match = call.request.headers.get("if-none-match", "").strip() == "*"
    try:
        outcome = await call.calendars.put_object(
            call.user.id,
            call.target.calendar,
            call.target.name,
            data,
            if_match=if_match.strip() if if_match else None,
            if_none_match=if_none_match,
        )
    except NotFound:
        raise DavError(409, f"there is no calendar {call.target.calendar}") from None
    return Response(
        status_code=201 if outcome.created else 204, headers={"ETag": outcome.object.etag}
    )


async def get(call: Call) -> Response:
    """A calendar object's bytes as stored (GET and HEAD)."""
    if call.target.kind is not Kind.OBJECT:
        raise DavError(405, "GET reads calendar objects")
    calendar = await call.calendar()
    obj = await call.calendars.get_object(calendar, call.target.name)
    data = await call.calendars.read_bytes(obj)
    return Response(
        data,
        media_type="text/calendar; charset=utf-8",
        headers={"ETag": obj.etag},
    )


async def delete(call: Call) -> Response:
    """A calendar object, or a whole calendar (RFC 4918 section 9.6)."""
    if_match = call.request.headers.get("if-match")
    match call.target.kind:
        case Kind.OBJECT:
            await call.calendars.delete_object(
                call.user.id,
                call.target.calendar,
                call.target.name,
                if_match=if_match.strip() if if_match else None,
            )
        case Kind.CALENDAR:
            if if_match is not None and if_match.strip() != "*":
                raise DavError(412, "a calendar has no ETag")
            await call.calendars.delete_calendar(call.user.id, call.target.calendar)
        case _:
            raise DavError(403, "only calendars and their objects can be deleted")
    return Response(status_code=204)
