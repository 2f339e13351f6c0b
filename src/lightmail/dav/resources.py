"""The URL space of CalDAV and CardDAV and the WebDAV properties of each kind of resource.

::

    /                                     root (discovery starts here)
    /principals/<address>/                the user's principal (RFC 3744)
    /calendars/<address>/                 the calendar home (calendar-home-set)
    /calendars/<address>/<calendar>/      a calendar collection (RFC 4791 4.2)
    /calendars/<address>/<calendar>/<name> a calendar object resource
    /calendars/<address>/<calendar>/<...>/ nothing: below a collection, no collection exists
    /addressbooks/<address>/              the address book home (addressbook-home-set)
    /addressbooks/<address>/<book>/       an address book collection (RFC 6352 5.2)
    /addressbooks/<address>/<book>/<name> an address object resource (a vCard)
    /addressbooks/<address>/<book>/<...>/ nothing, as below a calendar

A :class:`Target`'s ``space`` says which of the two trees it is in; the
address book properties are in :mod:`.carddav`.

:func:`locate` turns a decoded request path into a :class:`Target`; the
property functions build the ``DAV:prop`` children a PROPFIND, REPORT or
sync-collection answers with. No I/O: the caller fetched the calendars and
objects.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from lightmail.calendars.rows import CalendarInfo, CalendarObject
from lightmail.dav.xml import APPLE, CALDAV, CALSERVER, CARDDAV, DAV, element, tag

SYNC_TOKEN_PREFIX = "urn:lightmail:sync:"  # noqa: S105 (not a secret)


class Kind(enum.Enum):
    ROOT = "root"
    PRINCIPAL = "principal"
    HOME = "home"
    CALENDAR = "calendar"
    OBJECT = "object"
    NESTED = "nested"  # below a calendar but no object: nothing is there, nothing can be made


class Space(enum.Enum):
    """The tree a collection path is in, named by its first segment."""

    CALENDARS = "calendars"
    ADDRESSBOOKS = "addressbooks"


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    owner: str = ""  # the address in the path
    calendar: str = ""  # the collection: a calendar or an address book
    name: str = ""  # of the object; for NESTED, the path below the collection
    space: Space = Space.CALENDARS


def locate(path: str) -> Target | None:
    """The resource a (percent-decoded) path names, or None for none of ours."""
    parts = [part for part in path.split("/") if part]
    if not parts:
        return Target(Kind.ROOT)
    if any(part in (".", "..") for part in parts):
        return None
    if len(parts) == 2 and parts[0] == "principals":
        return Target(Kind.PRINCIPAL, parts[1])
    try:
        space = Space(parts[0])
    except ValueError:
        return None
    match parts[1:]:
        case [owner]:
            return Target(Kind.HOME, owner, space=space)
        case [owner, calendar]:
            return Target(Kind.CALENDAR, owner, calendar, space=space)
        case [owner, calendar, name] if not path.endswith("/"):
            return Target(Kind.OBJECT, owner, calendar, name, space=space)
        case [owner, calendar, *rest]:
            return Target(Kind.NESTED, owner, calendar, "/".join(rest), space=space)
    return None


def principal_path(owner: str) -> str:
    return f"/principals/{quote(owner, safe='@')}/"


def home_path(owner: str, space: Space = Space.CALENDARS) -> str:
    return f"/{space.value}/{quote(owner, safe='@')}/"


def calendar_path(owner: str, calendar: str, space: Space = Space.CALENDARS) -> str:
    """A calendar's (or, in ``space`` ADDRESSBOOKS, an address book's) path."""
    return f"{home_path(owner, space)}{quote(calendar, safe='')}/"


def object_path(owner: str, calendar: str, name: str, space: Space = Space.CALENDARS) -> str:
    return f"{calendar_path(owner, calendar, space)}{quote(name, safe='@')}"


def sync_token(calendar: CalendarInfo) -> str:
    """The calendar's state as a URI (RFC 6578 section 3.2); also its getctag."""
    return f"{SYNC_TOKEN_PREFIX}{calendar.id}:{calendar.sync_token}"


def parse_sync_token(calendar: CalendarInfo, token: str) -> int | None:
    """The modseq in one of this calendar's tokens; None for any other text."""
    prefix = f"{SYNC_TOKEN_PREFIX}{calendar.id}:"
    value = token.strip().removeprefix(prefix)
    if value == token.strip() or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


# -- properties -------------------------------------------------------------------

D = {name: tag(DAV, name) for name in (
    "resourcetype", "displayname", "getetag", "getcontenttype", "getcontentlength",
    "current-user-principal", "current-user-privilege-set", "principal-URL", "owner",
    "supported-report-set", "sync-token", "collection", "principal", "href",
    "privilege", "supported-report", "report", "prop", "set",
)}  # fmt: skip
C = {name: tag(CALDAV, name) for name in (
    "calendar", "calendar-home-set", "calendar-user-address-set", "calendar-description",
    "supported-calendar-component-set", "supported-calendar-data", "max-resource-size",
    "calendar-data", "comp", "filter",
)}  # fmt: skip
GETCTAG = tag(CALSERVER, "getctag")
ADDRESSBOOK_HOME_SET = tag(CARDDAV, "addressbook-home-set")
CALENDAR_COLOR = tag(APPLE, "calendar-color")

_READ = ("read", "read-current-user-privilege-set")
_WRITE = (*_READ, "write", "write-properties", "write-content", "bind", "unbind")
_CALENDAR_REPORTS = (
    (CALDAV, "calendar-multiget"),
    (CALDAV, "calendar-query"),
    (DAV, "sync-collection"),
)


@dataclass(frozen=True, slots=True)
class Context:
    """Whom a property is computed for."""

    user: str  # the logged-in address
    max_object_size: int


def _hrefs(name: str, *paths: str) -> ET.Element:
    return element(name, *(element(D["href"], text=path) for path in paths))


def _privileges(names: Sequence[str]) -> ET.Element:
    return element(
        D["current-user-privilege-set"],
        *(element(D["privilege"], ET.Element(tag(DAV, name))) for name in names),
    )


def _reports(reports: Iterable[tuple[str, str]]) -> ET.Element:
    return element(
        D["supported-report-set"],
        *(
            element(D["supported-report"], element(D["report"], ET.Element(tag(ns, name))))
            for ns, name in reports
        ),
    )


def _resourcetype(*kinds: str) -> ET.Element:
    return element(D["resourcetype"], *(ET.Element(kind) for kind in kinds))


PropertyMap = dict[str, Callable[[], ET.Element]]


def _common(context: Context) -> PropertyMap:
    return {
        D["current-user-principal"]: lambda: _hrefs(
            D["current-user-principal"], principal_path(context.user)
        ),
        D["principal-URL"]: lambda: _hrefs(D["principal-URL"], principal_path(context.user)),
        C["calendar-home-set"]: lambda: _hrefs(C["calendar-home-set"], home_path(context.user)),
        ADDRESSBOOK_HOME_SET: lambda: _hrefs(
            ADDRESSBOOK_HOME_SET, home_path(context.user, Space.ADDRESSBOOKS)
        ),
    }


def root_properties(context: Context) -> PropertyMap:
    return {
        **_common(context),
        D["resourcetype"]: lambda: _resourcetype(D["collection"]),
        D["current-user-privilege-set"]: lambda: _privileges(_READ),
    }


def principal_properties(context: Context) -> PropertyMap:
    return {
        **_common(context),
        D["resourcetype"]: lambda: _resourcetype(D["collection"], D["principal"]),
        D["displayname"]: lambda: element(D["displayname"], text=context.user),
        C["calendar-user-address-set"]: lambda: _hrefs(
            C["calendar-user-address-set"], f"mailto:{context.user}", principal_path(context.user)
        ),
        D["current-user-privilege-set"]: lambda: _privileges(_READ),
    }


def home_properties(context: Context) -> PropertyMap:
    return {
        **_common(context),
        D["resourcetype"]: lambda: _resourcetype(D["collection"]),
        D["owner"]: lambda: _hrefs(D["owner"], principal_path(context.user)),
        D["current-user-privilege-set"]: lambda: _privileges(_WRITE),
        D["supported-report-set"]: lambda: _reports(_CALENDAR_REPORTS[2:]),
    }


def collection_properties(
    context: Context, calendar: CalendarInfo, kind: str, reports: Iterable[tuple[str, str]]
) -> PropertyMap:
    """What a calendar and an address book have alike; ``kind`` is the resourcetype
    element beside DAV:collection."""
    token = sync_token(calendar)
    return {
        **_common(context),
        D["resourcetype"]: lambda: _resourcetype(D["collection"], kind),
        D["displayname"]: lambda: element(D["displayname"], text=calendar.display_name),
        D["owner"]: lambda: _hrefs(D["owner"], principal_path(context.user)),
        D["current-user-privilege-set"]: lambda: _privileges(_WRITE),
        D["supported-report-set"]: lambda: _reports(reports),
        D["sync-token"]: lambda: element(D["sync-token"], text=token),
        GETCTAG: lambda: element(GETCTAG, text=token),
    }


def calendar_properties(context: Context, calendar: CalendarInfo) -> PropertyMap:
    return {
        **collection_properties(context, calendar, C["calendar"], _CALENDAR_REPORTS),
        C["calendar-description"]: lambda: element(
            C["calendar-description"], text=calendar.description
        ),
        CALENDAR_COLOR: lambda: element(CALENDAR_COLOR, text=calendar.color or "#3a87adff"),
        C["supported-calendar-component-set"]: lambda: element(
            C["supported-calendar-component-set"],
            *(_component(name) for name in calendar.components),
        ),
        C["supported-calendar-data"]: lambda: element(
            C["supported-calendar-data"], _calendar_data_type()
        ),
        C["max-resource-size"]: lambda: element(
            C["max-resource-size"], text=str(context.max_object_size)
        ),
    }


def object_properties(context: Context, obj: CalendarObject) -> PropertyMap:
    """A calendar object's properties, or (component VCARD) an address object's."""
    content_type = (
        "text/vcard; charset=utf-8"
        if obj.component == "VCARD"
        else f"text/calendar; charset=utf-8; component={obj.component.lower()}"
    )
    return {
        **_common(context),
        D["resourcetype"]: lambda: _resourcetype(),
        D["getetag"]: lambda: element(D["getetag"], text=obj.etag),
        D["getcontenttype"]: lambda: element(D["getcontenttype"], text=content_type),
        D["getcontentlength"]: lambda: element(D["getcontentlength"], text=str(obj.size)),
        D["current-user-privilege-set"]: lambda: _privileges(_WRITE),
    }


def _component(name: str) -> ET.Element:
    node = ET.Element(C["comp"])
    node.set("name", name)
    return node


def _calendar_data_type() -> ET.Element:
    node = ET.Element(C["calendar-data"])
    node.set("content-type", "text/calendar")
    node.set("version", "2.0")
    return node


ALLPROP_EXCLUDED = frozenset({D["current-user-privilege-set"], D["supported-report-set"]})
"""Properties ``DAV:allprop`` leaves out (RFC 4918 section 9.1: computed ones may be)."""


def select_properties(
    available: PropertyMap, wanted: Sequence[str] | None
) -> tuple[list[ET.Element], list[str]]:
    """The requested properties found, and the names of those not (``wanted`` None:
    allprop)."""
    if wanted is None:
        return [build() for name, build in available.items() if name not in ALLPROP_EXCLUDED], []
    found = [available[name]() for name in wanted if name in available]
    missing = [name for name in wanted if name not in available]
    return found, missing
