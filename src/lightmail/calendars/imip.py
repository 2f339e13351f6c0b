"""Invitations by mail (iMIP, RFC 6047): a delivered ``text/calendar`` part with
METHOD REQUEST or CANCEL changes the recipient's default calendar.

RFC 5546 (iTIP) section 2.1.5: a REQUEST for a UID the calendar does not have
adds the event; one whose SEQUENCE (then DTSTAMP) is newer than the stored
copy's replaces it (or, when it holds only overridden instances, those
instances); a newer CANCEL removes the event, or marks the instances it names
CANCELLED. The recipient has not answered yet, so their ATTENDEE gets
PARTSTAT=NEEDS-ACTION (section 2.1.1): the event is tentative until they
accept it in their calendar client.

Only the organiser may change an event (RFC 6047 section 2.2.1): the
ORGANIZER must be an address of the message's From header, and a stored event
is changed only when it has that same ORGANIZER. Addresses are compared
without ``mailto:`` and ignoring case. An invitation that fails a check is
logged and left alone: the message itself is delivered whatever happens here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from icalendar import Calendar, Component

from lightmail.calendars.ics import split_calendar
from lightmail.calendars.store import DEFAULT_CALENDAR, CalendarStore
from lightmail.calendars.transfer import object_name
from lightmail.errors import InvalidCalendarData, NotFound
from lightmail.mailstore.mime import transfer
from lightmail.mailstore.mime.types import AddressList, BodyPart
from lightmail.mailstore.types import Recipient, StoredMessage
from lightmail.storage.blobs import BlobStore

log = logging.getLogger(__name__)

METHODS = ("REQUEST", "CANCEL")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Invitation:
    """The components of one UID in an iMIP message."""

    method: str  # REQUEST or CANCEL
    uid: str
    organizer: str  # the address, lower case; "" when there is none
    data: bytes  # a calendar object resource: the components, their VTIMEZONEs, no METHOD


def calendar_part(root: BodyPart) -> BodyPart | None:
    """The first ``text/calendar`` part with a METHOD iMIP acts on, outside attached
    messages (a forwarded invitation is not the sender's)."""
    if root.type == "TEXT" and root.subtype == "CALENDAR":
        method = (root.param("METHOD") or "").upper()
        return root if method in METHODS else None
    for child in root.children:
        found = calendar_part(child)
        if found is not None:
            return found
    return None


def from_addresses(addresses: AddressList) -> set[str]:
    """The addresses of a From header, lower case."""
    return {
        f"{a.mailbox}@{a.host}".lower()
        for a in addresses or ()
        if a.mailbox is not None and a.host is not None
    }


def parse_invitations(data: bytes) -> list[Invitation]:
    """The invitations of an iMIP calendar part, one per UID; InvalidCalendarData
    when it is not iCalendar with METHOD REQUEST or CANCEL."""
    calendar = Calendar.from_ical(data)
    method = str(calendar.get("METHOD", "")).upper()
    if method not in METHODS:
        raise InvalidCalendarData("valid-calendar-data", f"METHOD {method[:20]!r} is not iMIP's")
    invitations = []
    for uid, single in split_calendar(data):
        parts = _components(Calendar.from_ical(single))
        organizers = {_address(part.get("ORGANIZER")) for part in parts}
        organizer = organizers.pop() if len(organizers) == 1 else ""
        invitations.append(Invitation(method, uid, organizer, single))
    return invitations


def _components(calendar: Calendar) -> list[Component]:
    return [part for part in calendar.subcomponents if part.name != "VTIMEZONE"]


def _address(value: object) -> str:
    text = str(value or "").strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    return text.lower()


def _version(part: Component) -> tuple[int, datetime]:
    """RFC 5546 section 2.1.5: SEQUENCE first, then DTSTAMP, says which is newer."""
    try:
        sequence = int(part.get("SEQUENCE", 0))
    except (TypeError, ValueError):
        sequence = 0
    stamp = getattr(part.get("DTSTAMP"), "dt", None)
    if not isinstance(stamp, datetime):
        return sequence, _EPOCH
    return sequence, stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _instance(part: Component) -> str:
    """Which instance a component is: "" for the master, else its RECURRENCE-ID."""
    rid = part.get("RECURRENCE-ID")
    return "" if rid is None else str(rid.to_ical())


def is_newer(incoming: bytes, stored: bytes) -> bool:
    """Whether every component of ``incoming`` is newer than the stored component of
    the same instance (or, for an instance the stored object does not override,
    than its master)."""
    old = {_instance(part): part for part in _components(Calendar.from_ical(stored))}
    for part in _components(Calendar.from_ical(incoming)):
        against = old.get(_instance(part)) or old.get("")
        if against is not None and _version(part) <= _version(against):
            return False
    return True


def tentative(data: bytes, attendees: Iterable[str]) -> bytes:
    """The object with PARTSTAT=NEEDS-ACTION on the ATTENDEEs that are ``attendees``."""
    wanted = {address.lower() for address in attendees}
    calendar = Calendar.from_ical(data)
    for part in _components(calendar):
        found = part.get("ATTENDEE")
        for attendee in found if isinstance(found, list) else [found] if found else []:
            if _address(attendee) in wanted:
                attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    return bytes(calendar.to_ical())


def merged(stored: bytes, incoming: bytes, *, cancel: bool) -> bytes | None:
    """The stored object after ``incoming``: None (removed) for a CANCEL of the whole
    event; for one of instances, those instances as CANCELLED overrides; a REQUEST
    with a master replaces the object, one of instances replaces those."""
    new = _components(Calendar.from_ical(incoming))
    whole = any(_instance(part) == "" for part in new)
    if cancel and whole:
        return None
    if cancel:
        for part in new:
            part.pop("STATUS", None)
            part.add("STATUS", "CANCELLED")
    if whole:
        return incoming
    calendar = Calendar.from_ical(stored)
    replaced = {_instance(part) for part in new}
    calendar.subcomponents = [
        part for part in calendar.subcomponents if _instance(part) not in replaced
    ]
    known = {str(zone.get("TZID")) for zone in calendar.walk("VTIMEZONE")}
    for zone in Calendar.from_ical(incoming).walk("VTIMEZONE"):
        if str(zone.get("TZID")) not in known:
            calendar.subcomponents.insert(0, zone)
    for part in new:
        calendar.add_component(part)
    return bytes(calendar.to_ical())


class Invitations:
    """Applies the iMIP part of delivered messages to the recipients' calendars."""

    def __init__(self, blobs: BlobStore, calendars: CalendarStore, max_size: int) -> None:
        self.blobs = blobs
        self.calendars = calendars
        self.max_size = max_size  # [dav] max_object_size: a larger part is left alone

    async def receive(self, stored: StoredMessage, recipients: Sequence[Recipient]) -> None:
        """Apply the message's invitation, if it has one, for each recipient; errors
        of the calendar part (malformed, forged) are logged, others raised."""
        part = calendar_part(stored.parsed.body)
        if part is None or not recipients:
            return
        if part.size > self.max_size * 2:  # encoded: base64 takes 4/3
            log.warning("imip: a calendar part of %d bytes is too large; ignored", part.size)
            return
        body = b"".join(
            [chunk async for chunk in self.blobs.get_range(stored.key, part.body_start, part.end)]
        )
        try:
            data = transfer.decode(body, part.encoding)
            if len(data) > self.max_size:
                raise ValueError(f"over [dav] max_object_size ({len(data)} bytes)")
            invitations = await asyncio.to_thread(parse_invitations, data)
        except (InvalidCalendarData, ValueError) as error:
            log.warning("imip: the calendar part is not usable: %s", error)
            return
        senders = from_addresses(stored.parsed.envelope.from_)
        for invitation in invitations:
            if not invitation.organizer or invitation.organizer not in senders:
                log.warning(
                    "imip: %s of %s ignored: its ORGANIZER %r did not send the message",
                    invitation.method,
                    invitation.uid[:100],
                    invitation.organizer[:100],
                )
                continue
            for recipient in dict.fromkeys(recipients):
                await self._apply(invitation, recipient)

    async def _apply(self, invitation: Invitation, recipient: Recipient) -> None:
        what = f"imip: {invitation.method} of {invitation.uid[:100]} for {recipient.address}"
        try:
            calendar = await self.calendars.get_calendar(recipient.user_id, DEFAULT_CALENDAR)
        except NotFound:
            log.info("%s ignored: no default calendar", what)
            return
        existing = await self.calendars.object_with_uid(calendar, invitation.uid)
        cancel = invitation.method == "CANCEL"
        incoming = invitation.data
        if not cancel:
            incoming = await asyncio.to_thread(tentative, incoming, [recipient.address])
        if existing is None:
            if cancel:
                log.info("%s ignored: no such event", what)
                return
            taken = {obj.name for obj in await self.calendars.list_objects(calendar)}
            name = object_name(invitation.uid, taken)
            await self._put(what, recipient, name, incoming, None)
            return
        stored = await self.calendars.read_bytes(existing)
        organizers = {_address(p.get("ORGANIZER")) for p in _components(Calendar.from_ical(stored))}
        if organizers != {invitation.organizer}:
            log.warning("%s ignored: the stored event has another organiser", what)
            return
        if not await asyncio.to_thread(is_newer, incoming, stored):
            log.info("%s ignored: not newer than the stored event", what)
            return
        result = await asyncio.to_thread(merged, stored, incoming, cancel=cancel)
        if result is None:
            await self.calendars.delete_object(
                recipient.user_id, DEFAULT_CALENDAR, existing.name, if_match=existing.etag
            )
            log.info("%s: removed", what)
            return
        await self._put(what, recipient, existing.name, result, existing.etag)

    async def _put(
        self, what: str, recipient: Recipient, name: str, data: bytes, etag: str | None
    ) -> None:
        try:
            await self.calendars.put_object(
                recipient.user_id,
                DEFAULT_CALENDAR,
                name,
                data,
                if_match=etag,
                if_none_match=etag is None,
            )
        except InvalidCalendarData as error:
            log.warning("%s ignored: %s", what, error)
            return
        log.info("%s: stored as %s", what, name)
