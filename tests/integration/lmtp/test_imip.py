"""Invitations by mail (iMIP, RFC 6047) delivered over LMTP with smtplib.LMTP, on both
storage backends: the event lands in the recipient's default calendar, a newer
REQUEST updates it, a CANCEL removes it, and nobody but its organiser changes it."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import pytest
from icalendar import Calendar

from lightmail.accounts.service import User
from lightmail.calendars.store import DEFAULT_CALENDAR
from tests.integration.lmtp.conftest import LmtpFactory, LmtpTarget
from tests.integration.lmtp.test_delivery import stored

ORGANIZER = "organizer@example.net"
MALLORY = "mallory@example.com"


def invitation(
    recipient: str,
    *,
    method: str = "REQUEST",
    uid: str = "meeting-1@example.net",
    sequence: int = 0,
    summary: str = "Planning",
    organizer: str = ORGANIZER,
    extra: str = "",
) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        f"METHOD:{method}\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nSEQUENCE:{sequence}\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20260301T100000Z\r\nDTEND:20260301T110000Z\r\n"
        f"SUMMARY:{summary}\r\nORGANIZER;CN=Org:mailto:{organizer}\r\n"
        f"ATTENDEE;RSVP=TRUE:mailto:{recipient.upper()}\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def message(ics: str, *, sender: str = ORGANIZER, method: str = "REQUEST", cte: str = "") -> bytes:
    mail = EmailMessage()
    mail["From"] = f"Someone <{sender}>"
    mail["To"] = "attendee@example.org"
    mail["Subject"] = "Invitation"
    mail.set_content("You are invited.\n")
    if cte:
        mail.add_alternative(ics, subtype="calendar", params={"method": method}, cte=cte)
    else:
        mail.add_alternative(ics, subtype="calendar", params={"method": method})
    return mail.as_bytes(policy=mail.policy.clone(linesep="\r\n"))


async def deliver(target: LmtpTarget, user: User, data: bytes, sender: str = ORGANIZER) -> None:
    """Deliver with smtplib.LMTP; QUIT is answered once the session is done with the
    message, its invitation included."""

    def send() -> None:
        with smtplib.LMTP(target.host, target.port, timeout=30) as lmtp:
            assert lmtp.sendmail(sender, [user.address], data) == {}

    await asyncio.to_thread(send)


async def events(target: LmtpTarget, user: User) -> list[Calendar]:
    calendars = target.backend.accounts.calendars
    calendar = await calendars.get_calendar(user.id, DEFAULT_CALENDAR)
    found = []
    for obj in await calendars.list_objects(calendar):
        parsed = Calendar.from_ical(await calendars.read_bytes(obj))
        assert isinstance(parsed, Calendar)
        found.append(parsed)
    return found


def summary(calendar: Calendar) -> str:
    return str(calendar.walk("VEVENT")[0]["SUMMARY"])


@pytest.fixture
async def imip(lmtp_factory: LmtpFactory) -> LmtpTarget:
    return await lmtp_factory(dav={"imip": "tentative"})


async def test_a_request_adds_a_tentative_event_and_a_cancel_removes_it(
    imip: LmtpTarget,
) -> None:
    user = await imip.new_user()
    # The addresses are compared ignoring case.
    request = invitation(user.address, organizer=ORGANIZER.title())
    await deliver(imip, user, message(request.replace("mailto:", "MAILTO:"), cte="base64"))
    (event,) = await events(imip, user)
    assert event.get("METHOD") is None
    (component,) = event.walk("VEVENT")
    assert str(component["UID"]) == "meeting-1@example.net"
    attendee = component["ATTENDEE"]
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert len(await stored(imip, user)) == 1  # the mail is delivered too

    cancel = invitation(user.address, method="CANCEL", sequence=1)
    await deliver(imip, user, message(cancel, method="CANCEL", cte="quoted-printable"))
    assert await events(imip, user) == []
    assert len(await stored(imip, user)) == 2


async def test_a_newer_request_updates_the_event_and_an_older_one_does_not(
    imip: LmtpTarget,
) -> None:
    user = await imip.new_user()
    await deliver(imip, user, message(invitation(user.address, summary="First")))
    await deliver(imip, user, message(invitation(user.address, sequence=2, summary="Moved")))
    (event,) = await events(imip, user)
    assert summary(event) == "Moved"
    await deliver(imip, user, message(invitation(user.address, sequence=1, summary="Stale")))
    stale_cancel = invitation(user.address, method="CANCEL", sequence=1)
    await deliver(imip, user, message(stale_cancel, method="CANCEL"))
    (event,) = await events(imip, user)
    assert summary(event) == "Moved"
    assert len(await stored(imip, user)) == 4


async def test_another_sender_cannot_change_or_cancel_an_organisers_event(
    imip: LmtpTarget,
) -> None:
    user = await imip.new_user()
    await deliver(imip, user, message(invitation(user.address, summary="Real")))
    forged = [
        # Mallory as the organiser of the same UID, with a higher SEQUENCE.
        message(
            invitation(user.address, sequence=5, summary="Forged", organizer=MALLORY),
            sender=MALLORY,
        ),
        # Mallory sending in the organiser's name.
        message(invitation(user.address, sequence=6, summary="Forged"), sender=MALLORY),
        message(
            invitation(user.address, method="CANCEL", sequence=7), sender=MALLORY, method="CANCEL"
        ),
    ]
    for data in forged:
        await deliver(imip, user, data, sender=MALLORY)
    (event,) = await events(imip, user)
    assert summary(event) == "Real"
    assert len(await stored(imip, user)) == 1 + len(forged)

    # An invitation whose organiser is not who sent it adds nothing either.
    other = invitation(user.address, uid="other@example.net", organizer="boss@example.net")
    await deliver(imip, user, message(other))
    assert [str(e.walk("VEVENT")[0]["UID"]) for e in await events(imip, user)] == [
        "meeting-1@example.net"
    ]


async def test_a_users_own_event_is_not_taken_over_by_an_invitation(imip: LmtpTarget) -> None:
    user = await imip.new_user()
    own = invitation(user.address, summary="Mine").replace("METHOD:REQUEST\r\n", "")
    own = own.replace(f"ORGANIZER;CN=Org:mailto:{ORGANIZER}\r\n", "")
    await imip.backend.accounts.calendars.put_object(
        user.id, DEFAULT_CALENDAR, "mine.ics", own.encode()
    )
    await deliver(imip, user, message(invitation(user.address, sequence=3, summary="Theirs")))
    (event,) = await events(imip, user)
    assert summary(event) == "Mine"


async def test_with_imip_off_an_invitation_is_mail_only(lmtp_factory: LmtpFactory) -> None:
    target = await lmtp_factory(dav={"imip": "off"})
    user = await target.new_user()
    await deliver(target, user, message(invitation(user.address)))
    assert await events(target, user) == []
    assert len(await stored(target, user)) == 1


async def test_a_malformed_calendar_part_is_delivered_without_an_event(
    imip: LmtpTarget,
) -> None:
    user = await imip.new_user()
    broken = [
        "BEGIN:VCALENDAR\r\nthis is not iCalendar\r\n",
        invitation(user.address).replace("DTSTART:20260301T100000Z", "DTSTART:tomorrow"),
        invitation(user.address).replace("UID:meeting-1@example.net\r\n", ""),
        invitation(user.address, method="PUBLISH"),
    ]
    for ics in broken:
        await deliver(imip, user, message(ics))
    assert await events(imip, user) == []
    assert len(await stored(imip, user)) == len(broken)


async def test_instances_of_a_series_are_updated_and_cancelled_one_by_one(
    imip: LmtpTarget,
) -> None:
    user = await imip.new_user()
    series = invitation(user.address, summary="Weekly", extra="RRULE:FREQ=WEEKLY;COUNT=4\r\n")
    await deliver(imip, user, message(series))
    second = "RECURRENCE-ID:20260308T100000Z\r\n"
    moved = invitation(user.address, sequence=1, summary="Moved once", extra=second)
    await deliver(imip, user, message(moved.replace("20260301T1", "20260309T1")))
    third = "RECURRENCE-ID:20260315T100000Z\r\n"
    cancel = invitation(user.address, method="CANCEL", sequence=1, extra=third)
    await deliver(imip, user, message(cancel, method="CANCEL"))

    (event,) = await events(imip, user)
    parts = {
        str(part.get("RECURRENCE-ID").to_ical().decode()) if "RECURRENCE-ID" in part else "": part
        for part in event.walk("VEVENT")
    }
    assert set(parts) == {"", "20260308T100000Z", "20260315T100000Z"}
    assert str(parts[""]["SUMMARY"]) == "Weekly"
    assert str(parts["20260308T100000Z"]["SUMMARY"]) == "Moved once"
    assert str(parts["20260315T100000Z"]["STATUS"]) == "CANCELLED"

    # A newer CANCEL of the whole series removes it, overrides and all.
    whole = invitation(user.address, method="CANCEL", sequence=2)
    await deliver(imip, user, message(whole, method="CANCEL"))
    assert await events(imip, user) == []
