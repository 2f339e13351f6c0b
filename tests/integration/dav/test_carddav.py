"""CardDAV (RFC 6352) as raw HTTP on both backends: discovery, address books, vCards
with their conditions, addressbook-query filters, multiget, sync-collection with
tombstones, cross-user refusal and hostile vCards. (The python ``caldav`` library
has no CardDAV client; a person's client speaks exactly these requests.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.dav.conftest import PASSWORD, DavTarget
from tests.integration.dav.test_hostile import BILLION_LAUGHS, DEEP, EXTERNAL_ENTITY
from tests.integration.dav.test_metrics import REQUESTS
from tests.integration.dav.test_webdav import XML_HEAD, Session
from tests.support.metrics import Changes

CR = "urn:ietf:params:xml:ns:carddav"
NS = {"D": "DAV:", "CR": CR, "CS": "http://calendarserver.org/ns/"}
DECLARED = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())
VCARD = "text/vcard; charset=utf-8"


def card(uid: str, fn: str, extra: str = "", version: str = "4.0") -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:{version}\r\nUID:{uid}\r\nFN:{fn}\r\n{extra}END:VCARD\r\n"
    ).encode()


def path_of(url: str) -> str:
    return "/" + url.split("//", 1)[1].split("/", 1)[1]


def parse(answer: httpx.Response) -> ET.Element:
    assert answer.status_code == 207, answer.text
    return ET.fromstring(answer.content)  # noqa: S314 (our own answer)


def hrefs(answer: httpx.Response, status: str = "200 OK") -> list[str]:
    """The hrefs of responses with properties found (or with ``status``)."""
    root = parse(answer)
    found = []
    for response in root.findall("D:response", NS):
        statuses = [node.text or "" for node in response.iter("{DAV:}status")]
        if any(status in text for text in statuses):
            found.append(response.findtext("D:href", "", NS))
    return sorted(found)


@pytest.fixture
async def books(dav: DavTarget) -> AsyncIterator[Session]:
    """A session whose ``home`` is the user's address book home."""
    user = await dav.new_user()
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        yield Session(http, f"{dav.url}/addressbooks/{user.address}/")


async def props(session: Session, url: str, *names: str) -> dict[str, str]:
    wanted = "".join(f"<{name}/>" for name in names)
    answer = await session.dav(
        "PROPFIND", url, f"{XML_HEAD}<D:propfind {DECLARED}><D:prop>{wanted}</D:prop></D:propfind>"
    )
    found = parse(answer).findall("D:response/D:propstat[D:status='HTTP/1.1 200 OK']/D:prop/*", NS)
    return {node.tag: "".join(node.itertext()) for node in found}


def query(body: str, prop: str = "<D:getetag/>") -> str:
    return (
        f"{XML_HEAD}<CR:addressbook-query {DECLARED}><D:prop>{prop}</D:prop>{body}"
        "</CR:addressbook-query>"
    )


async def test_discovery_leads_from_the_well_known_url_to_the_default_address_book(
    dav: DavTarget,
) -> None:
    user = await dav.new_user()
    async with httpx.AsyncClient(auth=(user.address, PASSWORD), base_url=dav.url) as http:
        well_known = await http.get("/.well-known/carddav")
        options = await http.options("/")
        session = Session(http, f"{dav.url}/addressbooks/{user.address}/")
        root = await props(session, "/", "D:current-user-principal")
        principal = root["{DAV:}current-user-principal"]
        home = (await props(session, principal, "CR:addressbook-home-set"))[
            f"{{{CR}}}addressbook-home-set"
        ]
        listing = await session.dav(
            "PROPFIND",
            home,
            f"{XML_HEAD}<D:propfind {DECLARED}><D:prop><D:resourcetype/><D:displayname/>"
            "<CR:supported-address-data/></D:prop></D:propfind>",
            depth="1",
        )
    assert (well_known.status_code, well_known.headers["location"]) == (301, "/")
    assert "addressbook" in options.headers["dav"]
    assert home == f"/addressbooks/{user.address}/"
    tree = parse(listing)
    kinds = {
        response.findtext("D:href", "", NS): [
            node.tag for node in response.iterfind(".//D:resourcetype/*", NS)
        ]
        for response in tree.findall("D:response", NS)
    }
    assert kinds == {
        home: ["{DAV:}collection"],
        f"{home}default/": ["{DAV:}collection", f"{{{CR}}}addressbook"],
    }
    versions = {node.get("version") for node in tree.iter(f"{{{CR}}}address-data-type")}
    assert versions == {"3.0", "4.0"}


async def test_mkcol_makes_an_address_book_and_proppatch_renames_it(books: Session) -> None:
    url = f"{books.home}friends/"
    made = await books.dav(
        "MKCOL",
        url,
        f"{XML_HEAD}<D:mkcol {DECLARED}><D:set><D:prop><D:resourcetype><D:collection/>"
        "<CR:addressbook/></D:resourcetype><D:displayname>Friends</D:displayname>"
        "<CR:addressbook-description>Close ones</CR:addressbook-description>"
        "</D:prop></D:set></D:mkcol>",
    )
    again = await books.dav(
        "MKCOL",
        url,
        f"{XML_HEAD}<D:mkcol {DECLARED}><D:set><D:prop><D:resourcetype><D:collection/>"
        "<CR:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>",
    )
    plain = await books.dav("MKCOL", f"{books.home}plain/")
    calendar_here = await books.dav("MKCALENDAR", f"{books.home}cal/")
    patched = await books.dav(
        "PROPPATCH",
        url,
        f"{XML_HEAD}<D:propertyupdate {DECLARED}><D:set><D:prop><D:displayname>Pals"
        "</D:displayname></D:prop></D:set></D:propertyupdate>",
    )
    found = await props(
        books, url, "D:displayname", "CR:addressbook-description", "CR:max-resource-size"
    )
    assert (made.status_code, again.status_code, plain.status_code) == (201, 405, 403)
    assert calendar_here.status_code == 403
    assert patched.status_code == 207
    assert found["{DAV:}displayname"] == "Pals"
    assert found[f"{{{CR}}}addressbook-description"] == "Close ones"
    assert found[f"{{{CR}}}max-resource-size"] == str(64 * 1024)
    deleted = await books.http.delete(url)
    assert deleted.status_code == 204
    assert (await books.http.get(f"{url}x.vcf")).status_code == 404


async def test_put_get_delete_with_etag_conditions(books: Session) -> None:
    url = f"{books.home}default/ann.vcf"
    created = await books.http.put(
        url, content=card("ann", "Ann"), headers={"If-None-Match": "*", "Content-Type": VCARD}
    )
    exists = await books.http.put(url, content=card("ann", "Ann"), headers={"If-None-Match": "*"})
    stale = await books.http.put(url, content=card("ann", "Anne"), headers={"If-Match": '"x"'})
    replaced = await books.http.put(
        url, content=card("ann", "Anne"), headers={"If-Match": created.headers["etag"]}
    )
    got = await books.http.get(url)
    stale_delete = await books.http.delete(url, headers={"If-Match": created.headers["etag"]})
    deleted = await books.http.delete(url, headers={"If-Match": replaced.headers["etag"]})
    assert (created.status_code, exists.status_code, stale.status_code) == (201, 412, 412)
    assert replaced.status_code == 204
    assert got.content == card("ann", "Anne")
    assert got.headers["content-type"].startswith("text/vcard")
    assert got.headers["etag"] == replaced.headers["etag"]
    assert (stale_delete.status_code, deleted.status_code) == (412, 204)
    assert (await books.http.get(url)).status_code == 404
    for old_type in ("text/directory", "text/x-vcard; charset=utf-8"):
        legacy = await books.http.put(
            f"{books.home}default/{old_type[5:9]}.vcf",
            content=card(old_type, "Old", version="3.0"),
            headers={"Content-Type": old_type},
        )
        assert legacy.status_code == 201, legacy.text


@pytest.mark.parametrize(
    ("body", "content_type", "precondition"),
    [
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:No UID\r\nEND:VCARD\r\n", VCARD, b"valid-address-data"),
        (b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\n", VCARD, b"valid-address-data"),
        (b"\xff\xfe\x00garbage", VCARD, b"valid-address-data"),
        (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", VCARD, b"valid-address-data"),
        (card("a", "A"), "text/calendar", b"supported-address-data"),
    ],
)
async def test_hostile_or_foreign_data_gets_403_with_the_carddav_precondition(
    books: Session, body: bytes, content_type: str, precondition: bytes
) -> None:
    answer = await books.http.put(
        f"{books.home}default/x.vcf", content=body, headers={"Content-Type": content_type}
    )
    assert answer.status_code == 403, answer.text
    assert precondition in answer.content
    assert CR.encode() in answer.content


async def test_a_second_card_with_a_uid_in_use_and_an_oversized_card_are_refused(
    books: Session,
) -> None:
    await books.http.put(f"{books.home}default/a.vcf", content=card("same", "A"))
    conflict = await books.http.put(f"{books.home}default/b.vcf", content=card("same", "B"))
    huge = await books.http.put(
        f"{books.home}default/h.vcf", content=card("h", "H", "NOTE:" + "x" * 70_000 + "\r\n")
    )
    assert conflict.status_code == 403
    assert b"no-uid-conflict" in conflict.content
    assert huge.status_code == 413


async def _fill(books: Session) -> str:
    book = f"{books.home}default/"
    for name, data in (
        ("ann", card("ann", "Ann Smith", "EMAIL;TYPE=work:ann@work.example\r\nNICKNAME:Annie\r\n")),
        ("bob", card("bob", "Bob Jones", "EMAIL;TYPE=home:bob@home.example\r\n", "3.0")),
        ("eve", card("eve", "Ève Müller", "item1.TEL;TYPE=cell:+33 1\r\n")),
    ):
        answer = await books.http.put(f"{book}{name}.vcf", content=data)
        assert answer.status_code == 201, answer.text
    return book


def _prop_filter(name: str, inner: str = "", test: str = "") -> str:
    attribute = f' test="{test}"' if test else ""
    return f'<CR:prop-filter name="{name}"{attribute}>{inner}</CR:prop-filter>'


def _text(text: str, **attributes: str) -> str:
    rendered = "".join(f' {key.replace("_", "-")}="{value}"' for key, value in attributes.items())
    return f"<CR:text-match{rendered}>{text}</CR:text-match>"


@pytest.mark.parametrize(
    ("filter_body", "expected"),
    [
        ("", ["ann", "bob", "eve"]),
        (_prop_filter("FN", _text("SMITH")), ["ann"]),
        (_prop_filter("FN", _text("ève", match_type="starts-with")), ["eve"]),
        (_prop_filter("FN", _text("eve", match_type="starts-with")), []),
        (_prop_filter("FN", _text("Jones", match_type="ends-with", collation="i;octet")), ["bob"]),
        (_prop_filter("FN", _text("bob jones", match_type="equals")), ["bob"]),
        (_prop_filter("FN", _text("smith", negate_condition="yes")), ["bob", "eve"]),
        (_prop_filter("EMAIL", _text(".example", match_type="ends-with")), ["ann", "bob"]),
        (_prop_filter("NICKNAME", "<CR:is-not-defined/>"), ["bob", "eve"]),
        (_prop_filter("ITEM1.TEL"), ["eve"]),
        (
            _prop_filter(
                "EMAIL",
                '<CR:param-filter name="TYPE">'
                + _text("home", match_type="equals")
                + "</CR:param-filter>",
            ),
            ["bob"],
        ),
        (_prop_filter("FN", _text("ann")) + _prop_filter("FN", _text("bob")), ["ann", "bob"]),
    ],
)
async def test_addressbook_query_filters(
    books: Session, filter_body: str, expected: list[str]
) -> None:
    book = await _fill(books)
    answer = await books.dav("REPORT", book, query(f"<CR:filter>{filter_body}</CR:filter>"), "1")
    assert hrefs(answer) == [f"{path_of(book)}{name}.vcf" for name in expected]


async def test_addressbook_query_allof_limit_collation_and_partial_data(books: Session) -> None:
    book = await _fill(books)
    both = _prop_filter("FN", _text("ann")) + _prop_filter("EMAIL", _text("work"))
    allof = await books.dav(
        "REPORT", book, query(f'<CR:filter test="allof">{both}</CR:filter>'), "1"
    )
    none = await books.dav(
        "REPORT",
        book,
        query(
            f'<CR:filter test="allof">{both}{_prop_filter("FN", _text("bob"))}</CR:filter>',
        ),
        "1",
    )
    limited = await books.dav(
        "REPORT",
        book,
        query("<CR:filter/><CR:limit><CR:nresults>2</CR:nresults></CR:limit>"),
        "1",
    )
    bad_collation = await books.dav(
        "REPORT",
        book,
        query(f"<CR:filter>{_prop_filter('FN', _text('a', collation='x;y'))}</CR:filter>"),
        "1",
    )
    partial = await books.dav(
        "REPORT",
        book,
        query(
            f"<CR:filter>{_prop_filter('NICKNAME')}</CR:filter>",
            '<D:getetag/><CR:address-data><CR:prop name="FN"/><CR:prop name="EMAIL" '
            'novalue="yes"/></CR:address-data>',
        ),
        "1",
    )
    assert hrefs(allof) == [f"{path_of(book)}ann.vcf"]
    assert hrefs(none) == []
    assert len(hrefs(limited)) == 2
    assert hrefs(limited, "507") == [path_of(book)]
    assert b"number-of-matches-within-limits" in limited.content
    assert bad_collation.status_code == 403
    assert b"supported-collation" in bad_collation.content
    (data,) = [node.text for node in parse(partial).iter(f"{{{CR}}}address-data")]
    assert data is not None
    assert data.replace("\r\n", "\n") == (
        "BEGIN:VCARD\nVERSION:4.0\nFN:Ann Smith\nEMAIL;TYPE=work:\nEND:VCARD\n"
    )


async def test_multiget_returns_cards_and_404_for_missing_ones(books: Session) -> None:
    book = await _fill(books)
    answer = await books.dav(
        "REPORT",
        book,
        f"{XML_HEAD}<CR:addressbook-multiget {DECLARED}><D:prop><D:getetag/><CR:address-data/>"
        f"</D:prop><D:href>{path_of(book)}bob.vcf</D:href>"
        f"<D:href>{path_of(book)}nobody.vcf</D:href></CR:addressbook-multiget>",
        "1",
    )
    assert hrefs(answer) == [f"{path_of(book)}bob.vcf"]
    assert hrefs(answer, "404") == [f"{path_of(book)}nobody.vcf"]
    (data,) = [node.text for node in parse(answer).iter(f"{{{CR}}}address-data")]
    assert data is not None
    assert "FN:Bob Jones" in data


async def test_sync_collection_reports_changes_and_tombstones(books: Session) -> None:
    book = await _fill(books)
    sync = (
        f"{XML_HEAD}<D:sync-collection xmlns:D='DAV:'><D:sync-token>{{token}}</D:sync-token>"
        "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
    )
    first = await books.dav("REPORT", book, sync.format(token=""))
    token = parse(first).findtext("D:sync-token", "", NS)
    await books.http.put(f"{book}ann.vcf", content=card("ann", "Ann Smythe"))
    await books.http.delete(f"{book}bob.vcf")
    await books.http.put(f"{book}zed.vcf", content=card("zed", "Zed"))
    second = await books.dav("REPORT", book, sync.format(token=token))
    ctag = await props(books, book, "CS:getctag", "D:sync-token")
    bogus = await books.dav("REPORT", book, sync.format(token="urn:other:1"))
    assert hrefs(first) == [f"{path_of(book)}{name}.vcf" for name in ("ann", "bob", "eve")]
    assert hrefs(second) == [f"{path_of(book)}{name}.vcf" for name in ("ann", "zed")]
    assert hrefs(second, "404") == [f"{path_of(book)}bob.vcf"]
    new_token = parse(second).findtext("D:sync-token", "", NS)
    assert new_token != token
    assert ctag["{http://calendarserver.org/ns/}getctag"] == new_token == ctag["{DAV:}sync-token"]
    assert bogus.status_code == 403
    assert b"valid-sync-token" in bogus.content


async def test_a_user_reaches_only_their_own_address_books(dav: DavTarget) -> None:
    owner, other = await dav.new_user(), await dav.new_user()
    theirs = f"{dav.url}/addressbooks/{owner.address}/default/"
    async with httpx.AsyncClient(auth=(owner.address, PASSWORD)) as http:
        await http.put(f"{theirs}a.vcf", content=card("a", "A"))
    async with httpx.AsyncClient(auth=(other.address, PASSWORD)) as http:
        answers = [
            await http.request("PROPFIND", theirs, headers={"Depth": "1"}),
            await http.get(f"{theirs}a.vcf"),
            await http.put(f"{theirs}b.vcf", content=card("b", "B")),
            await http.delete(f"{theirs}a.vcf"),
            await http.request(
                "REPORT",
                theirs,
                content=f"{XML_HEAD}<CR:addressbook-query {DECLARED}/>".encode(),
            ),
        ]
    assert [answer.status_code for answer in answers] == [403] * 5


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, DEEP])
async def test_hostile_xml_on_an_address_book_gets_400(books: Session, body: bytes) -> None:
    book = f"{books.home}default/"
    for method in ("REPORT", "PROPFIND", "PROPPATCH", "MKCOL"):
        url = book if method != "MKCOL" else f"{books.home}evil/"
        answer = await books.http.request(method, url, content=body, headers={"Depth": "1"})
        assert answer.status_code == 400, (method, answer.text)


async def test_carddav_requests_are_counted_like_caldav_ones(books: Session) -> None:
    changes = Changes()
    url = f"{books.home}default/m.vcf"
    assert (await books.http.put(url, content=card("m", "M"))).status_code == 201
    stale = await books.http.put(url, content=card("m", "N"), headers={"If-Match": '"no"'})
    assert stale.status_code == 412
    report = await books.dav("REPORT", f"{books.home}default/", query(""), "1")
    assert report.status_code == 207
    for method, status in (("PUT", "201"), ("PUT", "412"), ("REPORT", "207")):
        assert changes(REQUESTS, method=method, status=status) == 1, (method, status)
