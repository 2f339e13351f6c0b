"""Address object resources: one vCard (4.0, RFC 6350, or 3.0, RFC 2426), checked once
when it is stored, and matched against CardDAV filters (RFC 6352 section 10.5).

A careful parser of the content-line grammar (RFC 6350 section 3.3), not a
vCard object model: the store keeps the bytes as the client sent them and
needs only the UID, and a query needs each property's group, name,
parameters and value. :func:`parse_vcard` unfolds the lines, splits each
into ``[group "."] name *(";" param) ":" value`` (quoted parameter values
may hold ``;``, ``:`` and ``,``), and enforces RFC 6352 section 5.1: exactly
one vCard, with VERSION 3.0 or 4.0, one non-empty UID and an FN. Anything
else raises :class:`~lightmail.errors.InvalidAddressData` with the CardDAV
precondition it breaks; nothing else escapes, whatever the bytes. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lightmail.calendars.ics import MAX_UID_LENGTH, ParsedObject
from lightmail.errors import InvalidAddressData
from lightmail.mailstore.mime.sorting import casemap

COMPONENT = "VCARD"
"""What ``calendar_objects.component`` holds for an address object."""

VERSIONS = ("3.0", "4.0")
MAX_PROPERTIES = 10_000
"""The most content lines one vCard may have."""

_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TEXT_ESCAPES = {"n": "\n", "N": "\n", ",": ",", ";": ";", "\\": "\\", ":": ":"}
_PARAM_ESCAPES = {"n": "\n", "N": "\n", "^": "^", "'": '"'}  # RFC 6868


def _invalid(reason: str) -> InvalidAddressData:
    return InvalidAddressData("valid-address-data", reason)


@dataclass(frozen=True, slots=True)
class Property:
    """One content line: group and name upper-cased, parameter names upper-cased with
    their values decoded (RFC 6868), and the value as written (still escaped)."""

    group: str  # "" for none
    name: str
    params: tuple[tuple[str, tuple[str, ...]], ...]
    head: str  # the line before the value's colon, as written
    value: str

    def text(self) -> str:
        """The value with its backslash escapes undone (RFC 6350 section 3.4)."""
        return _unescape(self.value, "\\", _TEXT_ESCAPES)

    def param(self, name: str) -> tuple[str, ...] | None:
        """The values of parameter ``name`` (upper case), None if it is absent."""
        found = [values for key, values in self.params if key == name]
        return None if not found else tuple(value for values in found for value in values)


@dataclass(frozen=True, slots=True)
class VCard:
    version: str
    uid: str
    properties: tuple[Property, ...]  # without BEGIN and END


def parse_vcard(data: bytes) -> VCard:
    """One address object resource; InvalidAddressData if it is not exactly one valid
    vCard 3.0 or 4.0 with a UID and an FN."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("a vCard is UTF-8") from None
    lines = _unfold(text)
    if not lines or lines[0].upper() != "BEGIN:VCARD":
        raise _invalid("an address object is one BEGIN:VCARD ... END:VCARD")
    if lines[-1].upper() != "END:VCARD":
        raise _invalid("the vCard does not end with END:VCARD")
    if len(lines) > MAX_PROPERTIES + 2:
        raise _invalid(f"a vCard with more than {MAX_PROPERTIES} properties")
    properties = tuple(_content_line(line) for line in lines[1:-1])
    for prop in properties:
        if prop.name in ("BEGIN", "END"):
            raise _invalid("an address object holds a single vCard")
    versions = [prop.value.strip() for prop in properties if prop.name == "VERSION"]
    if len(versions) != 1 or versions[0] not in VERSIONS:
        raise _invalid("a vCard needs one VERSION, 3.0 or 4.0")
    uids = [prop.text().strip() for prop in properties if prop.name == "UID"]
    if len(uids) != 1 or not uids[0]:
        raise _invalid("a vCard in an address book needs one UID (RFC 6352 section 5.1)")
    if len(uids[0]) > MAX_UID_LENGTH:
        raise _invalid(f"a UID longer than {MAX_UID_LENGTH} characters")
    if not any(prop.name == "FN" for prop in properties):
        raise _invalid("a vCard needs an FN")
    return VCard(versions[0], uids[0], properties)


def parse_object(data: bytes, allowed: Iterable[str] = (COMPONENT,)) -> ParsedObject:
    """What the collection store keeps of an address object besides its bytes."""
    del allowed  # an address book holds vCards only
    card = parse_vcard(data)
    return ParsedObject(card.uid, COMPONENT, None, None, False)


def _unfold(text: str) -> list[str]:
    """The logical lines (RFC 6350 section 3.2): a line that starts with a space or tab
    continues the one before; CRLF and bare LF both end a line; blank lines go."""
    lines: list[str] = []
    blank = False  # the line before was blank: nothing to continue
    for physical in text.replace("\r\n", "\n").split("\n"):
        if physical[:1] in (" ", "\t"):
            if not lines or blank:
                raise _invalid("a continuation line follows no content line")
            lines[-1] += physical[1:]
        elif physical.strip():
            lines.append(physical)
        blank = not physical.strip() and physical[:1] not in (" ", "\t")
    for line in lines:
        if _FORBIDDEN.search(line) or "\r" in line:
            raise _invalid("a control character in a vCard line")
    return lines


def _content_line(line: str) -> Property:
    """``[group "."] name *(";" param) ":" value``; a parameter value in double quotes
    may hold ``;``, ``:`` and ``,`` (RFC 6350 section 3.3)."""
    parts: list[str] = []  # the name, then each parameter
    current: list[str] = []
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in ";:":
            parts.append("".join(current))
            current = []
            if char == ":":
                return _property(parts, line[:index], line[index + 1 :])
            continue
        current.append(char)
    raise _invalid(f"a vCard line without a value: {line[:40]!r}")


def _property(parts: list[str], head: str, value: str) -> Property:
    group, dot, name = parts[0].rpartition(".")
    if not _NAME.fullmatch(name) or (dot and not _NAME.fullmatch(group)):
        raise _invalid(f"not a vCard property name: {parts[0][:40]!r}")
    params = []
    for param in parts[1:]:
        key, equals, values = param.partition("=")
        if not equals:  # vCard 3.0's bare type ("TEL;HOME:..."), as TYPE
            key, values = "TYPE", param
        if not _NAME.fullmatch(key):
            raise _invalid(f"not a vCard parameter: {param[:40]!r}")
        decoded = _param_values(values)
        if key.upper() == "TYPE":  # RFC 6350's own example quotes the list: "voice,home"
            decoded = [kind for value in decoded for kind in value.split(",")]
        params.append((key.upper(), tuple(decoded)))
    return Property(group.upper(), name.upper(), tuple(params), head, value)


def _param_values(text: str) -> list[str]:
    values: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            values.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise _invalid("a parameter value with an unclosed quote")
    values.append("".join(current))
    return [_unescape(value, "^", _PARAM_ESCAPES) for value in values]


def _unescape(text: str, mark: str, escapes: dict[str, str]) -> str:
    if mark not in text:
        return text
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == mark:
            following = next(chars, "")
            out.append(escapes.get(following, char + following))
        else:
            out.append(char)
    return "".join(out)


# -- import and export ---------------------------------------------------------------


def split_vcards(data: bytes) -> list[tuple[str, bytes]]:
    """A ``.vcf`` file of many vCards as address objects: (UID, bytes) each, in the
    order they appear, each as written. Each must pass :func:`parse_vcard`."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("a vCard file is UTF-8") from None
    objects: list[tuple[str, bytes]] = []
    current: list[str] | None = None
    for physical in text.replace("\r\n", "\n").split("\n"):
        marker = physical.strip().upper()
        if current is None:
            if marker == "BEGIN:VCARD":
                current = [physical]
            elif marker:
                raise _invalid("text outside BEGIN:VCARD ... END:VCARD")
            continue
        current.append(physical)
        if marker == "END:VCARD" and physical[:1] not in (" ", "\t"):
            blob = ("\r\n".join(current) + "\r\n").encode()
            objects.append((parse_vcard(blob).uid, blob))
            current = None
    if current is not None:
        raise _invalid("the last vCard does not end with END:VCARD")
    if not objects:
        raise _invalid("no vCard")
    return objects


def join_vcards(objects: Iterable[bytes]) -> bytes:
    """Address objects as one ``.vcf`` file, each as stored, CRLF-terminated."""
    return b"".join(data if data.endswith(b"\n") else data + b"\r\n" for data in objects)


def partial(card: VCard, wanted: Sequence[tuple[str, bool]]) -> str:
    """The vCard with only the properties ``wanted`` names, (name, novalue) pairs, and
    its BEGIN, VERSION and END (RFC 6352 section 10.4.2: a name without a group
    matches any group; ``novalue`` keeps the name and parameters only)."""
    lines = ["BEGIN:VCARD", f"VERSION:{card.version}"]
    for prop in card.properties:
        if prop.name == "VERSION":
            continue
        hits = [novalue for name, novalue in wanted if _named(prop, name)]
        if hits:
            lines.append(prop.head + ":" + ("" if all(hits) else prop.value))
    lines.append("END:VCARD")
    return "\r\n".join(lines) + "\r\n"


def _named(prop: Property, name: str) -> bool:
    group, dot, bare = name.upper().rpartition(".")
    return prop.name == bare and (not dot or prop.group == group)


# -- filters (RFC 6352 section 10.5) ---------------------------------------------------

COLLATIONS = ("i;unicode-casemap", "i;ascii-casemap", "i;octet")
MATCH_TYPES = ("equals", "contains", "starts-with", "ends-with")


@dataclass(frozen=True, slots=True)
class TextMatch:
    text: str
    collation: str = "i;unicode-casemap"
    match_type: str = "contains"
    negate: bool = False

    def matches(self, value: str) -> bool:
        needle, hay = _collate(self.text, self.collation), _collate(value, self.collation)
        match self.match_type:
            case "equals":
                found = hay == needle
            case "starts-with":
                found = hay.startswith(needle)
            case "ends-with":
                found = hay.endswith(needle)
            case _:
                found = needle in hay
        return found != self.negate


def _collate(text: str, collation: str) -> str:
    if collation == "i;octet":
        return text
    if collation == "i;ascii-casemap":
        return "".join(char.upper() if char.isascii() else char for char in text)
    return casemap(text)


@dataclass(frozen=True, slots=True)
class ParamFilter:
    name: str  # upper case
    is_not_defined: bool = False
    text: TextMatch | None = None

    def matches(self, prop: Property) -> bool:
        values = prop.param(self.name)
        if values is None:
            return self.is_not_defined
        if self.is_not_defined:
            return False
        return self.text is None or any(self.text.matches(value) for value in values)


@dataclass(frozen=True, slots=True)
class CardPropFilter:
    name: str  # upper case, perhaps with a group: "X-ABC.TEL"
    all_of: bool = False
    is_not_defined: bool = False
    texts: tuple[TextMatch, ...] = ()
    params: tuple[ParamFilter, ...] = ()

    def matches(self, card: VCard) -> bool:
        found = [prop for prop in card.properties if _named(prop, self.name)]
        if self.is_not_defined:
            return not found
        if not found:
            return False
        tests = [
            *(any(text.matches(prop.text()) for prop in found) for text in self.texts),
            *(any(param.matches(prop) for prop in found) for param in self.params),
        ]
        if not tests:
            return True
        return all(tests) if self.all_of else any(tests)


@dataclass(frozen=True, slots=True)
class CardFilter:
    """A CARDDAV:filter: its prop-filters, any (default) or all of which must match;
    one without prop-filters matches every vCard."""

    props: tuple[CardPropFilter, ...] = ()
    all_of: bool = False

    def matches(self, card: VCard) -> bool:
        if not self.props:
            return True
        results = (prop.matches(card) for prop in self.props)
        return all(results) if self.all_of else any(results)
