"""PUT into a calendar and into an address book, the same code path for both: a failing
If-Match or If-None-Match is 412 even when the body is bad too (the conditions come
before the content, RFC 9110 section 13.2.1), and ``no-uid-conflict`` names the
object that has the UID (RFC 4791 section 5.3.2.1, RFC 6352 section 6.3.2.1)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from tests.integration.dav.conftest import PASSWORD, DavTarget
from tests.integration.dav.test_carddav import card
from tests.integration.dav.test_webdav import event

CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"


@dataclass(frozen=True)
class Kind:
    space: str  # the DAV tree
    namespace: str  # of its preconditions
    suffix: str
    media_type: str
    make: Callable[[str], bytes]  # an object with that UID
    bad: bytes  # content the kind refuses
    refusal: str  # the precondition that content breaks


KINDS = {
    "calendar": Kind(
        "calendars",
        CALDAV,
        ".ics",
        "text/calendar",
        lambda uid: event(uid, "20260105T090000Z", uid),
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n",
        "valid-calendar-data",
    ),
    "address book": Kind(
        "addressbooks",
        CARDDAV,
        ".vcf",
        "text/vcard",
        lambda uid: card(uid, uid),
        b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:no end\r\n",
        "valid-address-data",
    ),
}


@dataclass
class Collection:
    http: httpx.AsyncClient
    url: str  # of the user's default collection, ending in /
    kind: Kind

    async def put(self, name: str, data: bytes, **headers: str) -> httpx.Response:
        return await self.http.put(
            self.url + name + self.kind.suffix,
            content=data,
            headers={"Content-Type": self.kind.media_type, **headers},
        )

    async def create(self, name: str, uid: str) -> str:
        """A new object ``name`` with ``uid``; its ETag."""
        answer = await self.put(name, self.kind.make(uid), **{"If-None-Match": "*"})
        assert answer.status_code == 201, answer.text
        return answer.headers["etag"]


@pytest.fixture(params=sorted(KINDS))
async def collection(dav: DavTarget, request: pytest.FixtureRequest) -> AsyncIterator[Collection]:
    kind = KINDS[request.param]
    user = await dav.new_user()
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        yield Collection(http, f"{dav.url}/{kind.space}/{user.address}/default/", kind)


def precondition(answer: httpx.Response, namespace: str) -> ET.Element:
    """The one precondition element of a ``DAV:error`` answer."""
    assert answer.status_code == 403, (answer.status_code, answer.text)
    root = ET.fromstring(answer.content)  # noqa: S314 (our own answer)
    assert root.tag == "{DAV:}error"
    (element,) = list(root)
    assert element.tag.startswith(f"{{{namespace}}}")
    return element


async def test_a_failing_condition_gets_412_even_when_the_body_is_bad(
    collection: Collection,
) -> None:
    kind = collection.kind
    etag = await collection.create("kept", "kept")

    exists = await collection.put("kept", kind.bad, **{"If-None-Match": "*"})
    stale = await collection.put("kept", kind.bad, **{"If-Match": '"stale"'})
    missing = await collection.put("missing", kind.bad, **{"If-Match": "*"})
    # With conditions that hold, or none, the content's own refusal.
    current = await collection.put("kept", kind.bad, **{"If-Match": etag})
    new = await collection.put("new", kind.bad, **{"If-None-Match": "*"})
    plain = await collection.put("kept", kind.bad)

    assert [exists.status_code, stale.status_code, missing.status_code] == [412, 412, 412]
    for answer in (current, new, plain):
        assert precondition(answer, kind.namespace).tag == f"{{{kind.namespace}}}{kind.refusal}"
    got = await collection.http.get(collection.url + "kept" + kind.suffix)
    assert (got.content, got.headers["etag"]) == (kind.make("kept"), etag)


async def test_no_uid_conflict_carries_the_href_of_the_object_with_that_uid(
    collection: Collection,
) -> None:
    kind = collection.kind
    await collection.create("holder@home", "shared")

    conflict = await collection.put("second", kind.make("shared"))
    stale_conflict = await collection.put("holder@home", kind.bad, **{"If-Match": '"old"'})

    element = precondition(conflict, kind.namespace)
    assert element.tag == f"{{{kind.namespace}}}no-uid-conflict"
    hrefs = [node.text for node in element.findall("{DAV:}href")]
    assert hrefs == [urlsplit(collection.url).path + "holder@home" + kind.suffix]
    assert stale_conflict.status_code == 412
    assert (await collection.http.get(collection.url + "second" + kind.suffix)).status_code == 404
