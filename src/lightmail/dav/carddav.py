"""What CardDAV (RFC 6352) adds to the CalDAV server: the address book properties, the
CARDDAV:filter of addressbook-query (section 10.5) and address-data (section 10.4).

Address books are collections of the same store as calendars
(:mod:`lightmail.calendars.kinds`), so PROPFIND, PROPPATCH, MKCOL, PUT, GET,
DELETE, multiget and sync-collection run the same code as for calendars;
this module is the part that differs. No I/O.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from lightmail.calendars.rows import CalendarInfo
from lightmail.calendars.vcard import (
    COLLATIONS,
    MATCH_TYPES,
    VERSIONS,
    CardFilter,
    CardPropFilter,
    ParamFilter,
    TextMatch,
    VCard,
    partial,
)
from lightmail.dav.call import DavError
from lightmail.dav.resources import (
    Context,
    D,
    PropertyMap,
    collection_properties,
)
from lightmail.dav.xml import CARDDAV, DAV, element, tag

CR = {name: tag(CARDDAV, name) for name in (
    "addressbook", "addressbook-description", "supported-address-data", "address-data-type",
    "max-resource-size", "supported-collation-set", "supported-collation", "address-data",
    "addressbook-query", "addressbook-multiget", "filter", "prop-filter", "param-filter",
    "text-match", "is-not-defined", "limit", "nresults", "prop", "allprop",
)}  # fmt: skip

WRITABLE = {D["displayname"]: "display_name", CR["addressbook-description"]: "description"}
"""The properties a client may set on an address book, and the store's name for each."""

MAX_RESULTS = 5_000
"""The most vCards one addressbook-query answers with (RFC 6352 section 8.6.2)."""

_REPORTS = (
    (CARDDAV, "addressbook-multiget"),
    (CARDDAV, "addressbook-query"),
    (DAV, "sync-collection"),
)
_UNSUPPORTED = (CARDDAV, "supported-filter")


def addressbook_properties(context: Context, book: CalendarInfo) -> PropertyMap:
    return {
        **collection_properties(context, book, CR["addressbook"], _REPORTS),
        CR["addressbook-description"]: lambda: element(
            CR["addressbook-description"], text=book.description
        ),
        CR["supported-address-data"]: lambda: element(
            CR["supported-address-data"], *(_data_type(version) for version in VERSIONS)
        ),
        CR["max-resource-size"]: lambda: element(
            CR["max-resource-size"], text=str(context.max_object_size)
        ),
        CR["supported-collation-set"]: lambda: element(
            CR["supported-collation-set"],
            *(element(CR["supported-collation"], text=name) for name in COLLATIONS),
        ),
    }


def _data_type(version: str) -> ET.Element:
    node = ET.Element(CR["address-data-type"])
    node.set("content-type", "text/vcard")
    node.set("version", version)
    return node


# -- addressbook-query ---------------------------------------------------------------


def parse_filter(node: ET.Element | None) -> CardFilter:
    """A CARDDAV:filter (RFC 6352 section 10.5); DavError 403 with the precondition a
    part breaks. A query without a filter matches every vCard."""
    if node is None:
        return CardFilter()
    props = []
    for child in node:
        if child.tag != CR["prop-filter"]:
            raise DavError(403, "a filter holds prop-filters", _UNSUPPORTED)
        props.append(_prop_filter(child))
    return CardFilter(tuple(props), _all_of(node))


def _all_of(node: ET.Element) -> bool:
    test = node.get("test", "anyof")
    if test not in ("anyof", "allof"):
        raise DavError(400, "test is anyof or allof", (CARDDAV, "valid-filter"))
    return test == "allof"


def _prop_filter(node: ET.Element) -> CardPropFilter:
    name = node.get("name", "").strip().upper()
    if not name or len(name) > 130:
        raise DavError(403, "a prop-filter needs a name", _UNSUPPORTED)
    texts: list[TextMatch] = []
    params: list[ParamFilter] = []
    undefined = False
    for child in node:
        if child.tag == CR["is-not-defined"]:
            undefined = True
        elif child.tag == CR["text-match"]:
            texts.append(_text_match(child))
        elif child.tag == CR["param-filter"]:
            params.append(_param_filter(child))
        else:
            raise DavError(403, "unsupported prop-filter test", _UNSUPPORTED)
    if undefined and (texts or params):
        raise DavError(403, "is-not-defined stands alone", (CARDDAV, "valid-filter"))
    return CardPropFilter(name, _all_of(node), undefined, tuple(texts), tuple(params))


def _param_filter(node: ET.Element) -> ParamFilter:
    name = node.get("name", "").strip().upper()
    children = list(node)
    if not name or len(name) > 64 or len(children) > 1:
        raise DavError(403, "a param-filter takes a name and one test", _UNSUPPORTED)
    if not children:
        return ParamFilter(name)
    (test,) = children
    if test.tag == CR["is-not-defined"]:
        return ParamFilter(name, is_not_defined=True)
    if test.tag == CR["text-match"]:
        return ParamFilter(name, text=_text_match(test))
    raise DavError(403, "unsupported param-filter test", _UNSUPPORTED)


def _text_match(node: ET.Element) -> TextMatch:
    collation = node.get("collation", "i;unicode-casemap")
    if collation == "default":
        collation = "i;unicode-casemap"
    if collation not in COLLATIONS:
        raise DavError(403, "unsupported collation", (CARDDAV, "supported-collation"))
    match_type = node.get("match-type", "contains")
    if match_type not in MATCH_TYPES:
        raise DavError(403, "unsupported match-type", _UNSUPPORTED)
    negate = node.get("negate-condition", "no")
    if negate not in ("yes", "no"):
        raise DavError(400, "negate-condition is yes or no", (CARDDAV, "valid-filter"))
    return TextMatch(node.text or "", collation, match_type, negate == "yes")


def parse_limit(root: ET.Element) -> int:
    """The client's CARDDAV:limit (section 8.6.1), at most :data:`MAX_RESULTS`."""
    limit = root.find(CR["limit"])
    if limit is None:
        return MAX_RESULTS
    text = (limit.findtext(CR["nresults"]) or "").strip()
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise DavError(400, "nresults is a positive integer")
    return min(int(text), MAX_RESULTS)


def truncated(path: str) -> ET.Element:
    """The 507 response for the request URI of a truncated result (section 8.6.2)."""
    return element(
        tag(DAV, "response"),
        element(tag(DAV, "href"), text=path),
        element(tag(DAV, "status"), text="HTTP/1.1 507 Insufficient Storage"),
        element(tag(DAV, "error"), ET.Element(tag(DAV, "number-of-matches-within-limits"))),
    )


# -- address-data ----------------------------------------------------------------------


def wanted_properties(node: ET.Element) -> list[tuple[str, bool]] | None:
    """The vCard properties a CARDDAV:address-data asks for, (name, novalue) each;
    None for the whole vCard. A content type other than text/vcard is refused."""
    content_type = node.get("content-type", "text/vcard").lower()
    version = node.get("version", "3.0")
    if content_type != "text/vcard" or version not in VERSIONS:
        raise DavError(403, "text/vcard 3.0 or 4.0 only", (CARDDAV, "supported-address-data"))
    if node.find(CR["allprop"]) is not None:
        return None
    props = node.findall(CR["prop"])
    if not props:
        return None
    return [(prop.get("name", ""), prop.get("novalue", "no") == "yes") for prop in props]


def address_data(card: VCard | None, data: bytes, wanted: list[tuple[str, bool]] | None) -> str:
    """The text of a CARDDAV:address-data answer: the vCard as stored, or the parts
    ``wanted`` of the parsed ``card``."""
    if wanted is None or card is None:
        return data.decode("utf-8", "replace")
    return partial(card, wanted)
