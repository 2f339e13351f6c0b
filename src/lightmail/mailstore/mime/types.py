"""The parse results: ENVELOPE, BODYSTRUCTURE parts with offsets, and what is cached.

Each type writes itself as compact JSON with ``to_json`` and is rebuilt exactly by
``from_json`` (the shape checks are in `lightmail.mailstore.mime.codec`).

Envelope strings keep RFC 2047 encoded words encoded; `ParsedMessage`'s search
fields decode them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

from lightmail.mailstore.mime.codec import (
    JsonValue,
    json_int,
    json_list,
    json_nstr,
    json_str,
    params_from_json,
    params_to_json,
)
from lightmail.mailstore.mime.params import Params, param_text


@dataclass(frozen=True, slots=True)
class Address:
    """One address structure of an ENVELOPE (RFC 3501 section 7.4.2, ``address``).

    Group syntax: ``mailbox`` holds the group name and ``host`` is None at the start
    of a group; both are None at its end.
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None

    @property
    def is_group_start(self) -> bool:
        return self.host is None and self.mailbox is not None

    @property
    def is_group_end(self) -> bool:
        return self.host is None and self.mailbox is None

    def to_json(self) -> list[JsonValue]:
        return [self.name, self.adl, self.mailbox, self.host]

    @classmethod
    def from_json(cls, data: object) -> Address:
        items = json_list(data, 4, 4)
        return cls(
            json_nstr(items[0]), json_nstr(items[1]), json_nstr(items[2]), json_nstr(items[3])
        )


AddressList: TypeAlias = tuple[Address, ...] | None


@dataclass(frozen=True, slots=True)
class Envelope:
    """ENVELOPE (RFC 3501 section 7.4.2), fields in the RFC's order.

    Strings are the unfolded header values with RFC 2047 encoded words left encoded;
    None is NIL. Sender and reply-to are already defaulted to from.
    """

    date: str | None
    subject: str | None
    from_: AddressList
    sender: AddressList
    reply_to: AddressList
    to: AddressList
    cc: AddressList
    bcc: AddressList
    in_reply_to: str | None
    message_id: str | None

    def to_json(self) -> list[JsonValue]:
        return [
            self.date,
            self.subject,
            _addresses_to_json(self.from_),
            _addresses_to_json(self.sender),
            _addresses_to_json(self.reply_to),
            _addresses_to_json(self.to),
            _addresses_to_json(self.cc),
            _addresses_to_json(self.bcc),
            self.in_reply_to,
            self.message_id,
        ]

    @classmethod
    def from_json(cls, data: object) -> Envelope:
        items = json_list(data, 10, 10)
        return cls(
            json_nstr(items[0]),
            json_nstr(items[1]),
            _addresses_from_json(items[2]),
            _addresses_from_json(items[3]),
            _addresses_from_json(items[4]),
            _addresses_from_json(items[5]),
            _addresses_from_json(items[6]),
            _addresses_from_json(items[7]),
            json_nstr(items[8]),
            json_nstr(items[9]),
        )


EMPTY_ENVELOPE = Envelope(None, None, None, None, None, None, None, None, None, None)
"""The all-NIL envelope of a message whose header could not be had."""


@dataclass(frozen=True, slots=True)
class Disposition:
    """Content-Disposition (RFC 2183), as RFC 3501's ``body-fld-dsp``."""

    type: str
    params: Params

    def param(self, name: str) -> str | None:
        """The decoded value of a parameter (see `BodyPart.param`)."""
        return param_text(self.params, name)

    def to_json(self) -> list[JsonValue]:
        return [self.type, params_to_json(self.params)]

    @classmethod
    def from_json(cls, data: object) -> Disposition:
        items = json_list(data, 2, 2)
        return cls(json_str(items[0]), params_from_json(items[1]))


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One MIME entity: BODYSTRUCTURE's fields (RFC 3501 section 7.4.2) plus offsets.

    Offsets are absolute in the message: the part's MIME header (or, for a message,
    its RFC 5322 header) is ``[header_start, body_start)`` and its body is
    ``[body_start, end)``. ``children`` are the parts of a MULTIPART (never empty);
    a MESSAGE/RFC822 part has ``envelope`` and ``message``, the encapsulated
    message's root part, whose header is the encapsulated header.
    """

    type: str
    subtype: str
    params: Params
    id: str | None
    description: str | None
    encoding: str
    lines: int
    md5: str | None
    disposition: Disposition | None
    language: tuple[str, ...] | None
    location: str | None
    header_start: int
    body_start: int
    end: int
    children: tuple[BodyPart, ...] = ()
    envelope: Envelope | None = None
    message: BodyPart | None = None

    @property
    def size(self) -> int:
        """Body size in octets as transmitted (``body-fld-octets``)."""
        return self.end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.type == "MULTIPART"

    @property
    def is_message(self) -> bool:
        """MESSAGE/RFC822, which carries an envelope and an encapsulated message."""
        return self.message is not None

    def param(self, name: str) -> str | None:
        """The decoded value of Content-Type parameter `name`, or None.

        Prefers the RFC 2231 form (``NAME*``, decoded from its charset) over a plain
        ``NAME``, whose RFC 2047 encoded words, a common misuse, are decoded too.
        """
        return param_text(self.params, name)

    @property
    def filename(self) -> str | None:
        """The decoded file name: disposition FILENAME, else Content-Type NAME."""
        if self.disposition is not None:
            name = self.disposition.param("FILENAME")
            if name is not None:
                return name
        return self.param("NAME")

    def find(self, section: tuple[int, ...]) -> BodyPart | None:
        """The part numbered `section` (RFC 3501 section 6.4.5) under this message.

        Call it on a message's root part. ``()`` is the message itself. A message
        that is not multipart has only part 1, its body (this same part); the parts
        of a MESSAGE/RFC822 part are numbered under it. None if there is no such part.
        """
        if not section:
            return self
        current = _numbered(self)
        for depth, number in enumerate(section):
            if not 1 <= number <= len(current):
                return None
            part = current[number - 1]
            if depth == len(section) - 1:
                return part
            if part.is_multipart:
                current = part.children
            elif part.message is not None:
                current = _numbered(part.message)
            else:
                return None
        return None  # pragma: no cover - the loop always returns

    def to_json(self) -> list[JsonValue]:
        """A compact JSON-compatible form; `from_json` rebuilds the part exactly."""
        out: list[JsonValue] = [
            self.type,
            self.subtype,
            params_to_json(self.params),
            self.id,
            self.description,
            self.encoding,
            self.lines,
            self.md5,
            None if self.disposition is None else self.disposition.to_json(),
            None if self.language is None else list(self.language),
            self.location,
            self.header_start,
            self.body_start,
            self.end,
            [child.to_json() for child in self.children],
            None if self.envelope is None else self.envelope.to_json(),
            None if self.message is None else self.message.to_json(),
        ]
        while len(out) > _BODY_JSON_MIN and out[-1] in (None, []):
            out.pop()
        return out

    @staticmethod
    def bounds_from_json(data: object) -> tuple[int, int]:
        """``body_start`` and ``end`` of the part :meth:`to_json` gave, read without
        decoding the rest of it (FETCH of the message's header needs no more)."""
        items = json_list(data, _BODY_JSON_MIN, _BODY_JSON_MAX)
        return json_int(items[12]), json_int(items[13])

    @classmethod
    def from_json(cls, data: object) -> BodyPart:
        items = json_list(data, _BODY_JSON_MIN, _BODY_JSON_MAX)
        items += [None] * (_BODY_JSON_MAX - len(items))
        language = items[9]
        return cls(
            type=json_str(items[0]),
            subtype=json_str(items[1]),
            params=params_from_json(items[2]),
            id=json_nstr(items[3]),
            description=json_nstr(items[4]),
            encoding=json_str(items[5]),
            lines=json_int(items[6]),
            md5=json_nstr(items[7]),
            disposition=None if items[8] is None else Disposition.from_json(items[8]),
            language=None
            if language is None
            else tuple(json_str(tag) for tag in json_list(language, 0, None)),
            location=json_nstr(items[10]),
            header_start=json_int(items[11]),
            body_start=json_int(items[12]),
            end=json_int(items[13]),
            children=tuple(
                cls.from_json(child)
                for child in ([] if items[14] is None else json_list(items[14], 0, None))
            ),
            envelope=None if items[15] is None else Envelope.from_json(items[15]),
            message=None if items[16] is None else cls.from_json(items[16]),
        )


_BODY_JSON_MIN = 14
_BODY_JSON_MAX = 17


def _numbered(message: BodyPart) -> tuple[BodyPart, ...]:
    """The parts numbered 1.. directly under a message (RFC 3501 section 6.4.5)."""
    return message.children if message.is_multipart else (message,)


@dataclass(frozen=True, slots=True)
class SortKeys:
    """What SORT and THREAD compare (RFC 5256, RFC 5957), cached at delivery.

    The strings are in i;unicode-casemap form (``sorting.casemap``), ``""`` when
    the field is missing: ``subject`` is the base subject (RFC 5256 section
    2.1); ``from_``, ``to`` and ``cc`` the addr-mailbox of the field's first
    address; ``display_from`` and ``display_to`` the DISPLAY sort value of its
    first address (RFC 5957 section 3). ``reply`` tells whether the base
    subject extraction removed a reply or forward marker. ``message_id`` and
    ``references`` are normalized msg-ids (``sorting.message_ids``), ``""``
    and ``()`` when there are none.
    """

    subject: str
    reply: bool
    from_: str
    to: str
    cc: str
    display_from: str
    display_to: str
    message_id: str
    references: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything cached about a message at delivery (the parse cache of ``messages``).

    ``header`` is the top-level header block including its empty line, cut at
    ``max_header_bytes``: it is complete exactly when ``len(header) ==
    body.body_start``. The str fields are for SEARCH: RFC 2047 decoded, ``""``
    when the header is missing; ``sort`` is for SORT and THREAD.
    """

    size: int
    header: bytes
    envelope: Envelope
    body: BodyPart
    sent_date: datetime | None
    subject: str
    from_: str
    to: str
    cc: str
    bcc: str
    message_id: str
    sort: SortKeys


def _addresses_to_json(addresses: AddressList) -> JsonValue:
    return None if addresses is None else [address.to_json() for address in addresses]


def _addresses_from_json(data: object) -> AddressList:
    if data is None:
        return None
    return tuple(Address.from_json(item) for item in json_list(data, 1, None))
