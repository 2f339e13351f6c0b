"""WebDAV XML in and out: a hardened parser and the multistatus writer (RFC 4918).

Request bodies are parsed by :func:`parse` with defusedxml: no DTD at all (so
no entity can be declared, expanded or fetched: billion laughs and external
entities are refused before any expansion), a cap on nesting depth and on
the number of elements, and a body size the caller has already bounded. Any
breach raises :class:`XmlRefused`, which the server answers with 400. No I/O.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CALSERVER = "http://calendarserver.org/ns/"
APPLE = "http://apple.com/ns/ical/"

MAX_DEPTH = 32
MAX_ELEMENTS = 10_000

for _prefix, _uri in (("D", DAV), ("C", CALDAV), ("CR", CARDDAV), ("CS", CALSERVER), ("A", APPLE)):
    ET.register_namespace(_prefix, _uri)


def tag(namespace: str, name: str) -> str:
    """ElementTree's ``{namespace}name``."""
    return f"{{{namespace}}}{name}"


class XmlRefused(ValueError):
    """A request body that is not well-formed XML, or breaks a limit."""


class _Builder(ET.TreeBuilder):
    """A tree builder that counts nesting and elements as they come."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._elements = 0

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self._depth += 1
        self._elements += 1
        if self._depth > MAX_DEPTH:
            raise XmlRefused(f"XML nested deeper than {MAX_DEPTH} elements")
        if self._elements > MAX_ELEMENTS:
            raise XmlRefused(f"XML with more than {MAX_ELEMENTS} elements")
        return super().start(tag, attrs)

    def end(self, tag: str) -> ET.Element:
        self._depth -= 1
        return super().end(tag)


def parse(body: bytes) -> ET.Element | None:
    """The root element of ``body``; None for an empty body."""
    if not body.strip():
        return None
    parser = DefusedXMLParser(
        target=_Builder(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    try:
        parser.feed(body)
        root = parser.close()
    except XmlRefused:
        raise
    except (ExpatError, ET.ParseError, DefusedXmlException) as error:
        raise XmlRefused(f"malformed or forbidden XML: {type(error).__name__}") from None
    if not isinstance(root, ET.Element):
        raise XmlRefused("no root element")
    return root


def element(name: str, *children: ET.Element, text: str | None = None) -> ET.Element:
    """An element ``name`` (``{ns}local``) with ``children`` or ``text``."""
    node = ET.Element(name)
    node.extend(children)
    if text is not None:
        node.text = text
    return node


def href(path: str) -> ET.Element:
    return element(tag(DAV, "href"), text=path)


def status(code: int) -> ET.Element:
    return element(tag(DAV, "status"), text=f"HTTP/1.1 {code} {_REASONS.get(code, '')}".rstrip())


def propstat(props: Iterable[ET.Element], code: int) -> ET.Element:
    return element(tag(DAV, "propstat"), element(tag(DAV, "prop"), *props), status(code))


def response(path: str, found: list[ET.Element], missing: list[str]) -> ET.Element:
    """One ``DAV:response``: the properties found (200) and those not (404)."""
    node = element(tag(DAV, "response"), href(path))
    if found:
        node.append(propstat(found, 200))
    if missing:
        node.append(propstat([ET.Element(name) for name in missing], 404))
    if not found and not missing:
        node.append(status(200))
    return node


def status_response(path: str, code: int) -> ET.Element:
    return element(tag(DAV, "response"), href(path), status(code))


def multistatus(responses: Iterable[ET.Element], *extra: ET.Element) -> bytes:
    return serialize(element(tag(DAV, "multistatus"), *responses, *extra))


def error(namespace: str, condition: str, path: str | None = None) -> bytes:
    """A ``DAV:error`` body naming a precondition (RFC 4918 section 16), with the
    ``DAV:href`` of the resource it concerns when there is one (such as the object
    that holds a UID, RFC 4791 section 5.3.2.1, RFC 6352 section 6.3.2.1)."""
    node = ET.Element(tag(namespace, condition))
    if path is not None:
        node.append(href(path))
    return serialize(element(tag(DAV, "error"), node))


def serialize(root: ET.Element) -> bytes:
    """``root`` as an XML document, every carriage return written ``&#13;``.

    An XML parser turns a literal CR LF into LF (XML 1.0 section 2.11), and
    ElementTree writes the CR of a text literally: the CR LF line ends of an
    iCalendar object in ``calendar-data`` (RFC 5545 section 3.1) would reach
    the client as LF. A character reference survives, so the client reads the
    bytes that were stored. A CR can only come from text or an attribute value
    here, so every one in the document is replaced.
    """
    document = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return bytes(document).replace(b"\r", b"&#13;")


_REASONS = {
    200: "OK",
    201: "Created",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    424: "Failed Dependency",
    507: "Insufficient Storage",
}
