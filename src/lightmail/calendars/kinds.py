"""The kinds of DAV collection one store serves: calendars and address books.

Both are rows of ``calendars`` (``kind``) holding rows of ``calendar_objects``
whose bytes are a blob, with the same sync tokens, soft deletes and garbage
collection; a kind says only what differs: how an object is checked, where
its blob goes, the error it raises, and what a new collection holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from lightmail.calendars import ics, vcard
from lightmail.errors import InvalidAddressData, InvalidCalendarData, InvalidValue
from lightmail.storage.blobs import CALENDAR_PREFIX, VCARD_PREFIX


@dataclass(frozen=True, slots=True)
class CollectionKind:
    name: str  # the value of calendars.kind
    label: str  # for messages: "calendar", "address book"
    blob_prefix: str
    suffix: str  # of the object names import gives
    components: tuple[str, ...]  # those a collection of the kind may hold
    default_components: tuple[str, ...]
    default_display_name: str
    invalid: type[InvalidCalendarData]
    parse: Callable[[bytes, Iterable[str]], ics.ParsedObject]
    split: Callable[[bytes], list[tuple[str, bytes]]]
    join: Callable[[Iterable[bytes]], bytes]

    def check_components(self, components: Sequence[str]) -> tuple[str, ...]:
        wanted = tuple(dict.fromkeys(c.upper() for c in components))
        if not wanted or not set(wanted) <= set(self.components):
            raise InvalidValue(f"a {self.label} holds some of {', '.join(self.components)}")
        return wanted


CALENDAR = CollectionKind(
    "calendar",
    "calendar",
    CALENDAR_PREFIX,
    ".ics",
    ics.COMPONENTS,
    ("VEVENT", "VTODO"),
    "Calendar",
    InvalidCalendarData,
    ics.parse_object,
    ics.split_calendar,
    ics.join_objects,
)
ADDRESS_BOOK = CollectionKind(
    "addressbook",
    "address book",
    VCARD_PREFIX,
    ".vcf",
    (vcard.COMPONENT,),
    (vcard.COMPONENT,),
    "Contacts",
    InvalidAddressData,
    vcard.parse_object,
    vcard.split_vcards,
    vcard.join_vcards,
)
