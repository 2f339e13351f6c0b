"""Every IMAP command the server implements, driven through the ``imapclient`` library.

imapclient is a blocking client, so each conversation runs in a worker thread
while the server runs on the test's event loop. imapclient uses UIDs by
default (``use_uid=True``): FETCH, STORE, SEARCH, COPY and MOVE go out as
their UID forms unless a test switches ``use_uid`` off. Every test has its
own fresh user.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import imapclient  # type: ignore[import-untyped]
import pytest
from imapclient.exceptions import IMAPClientError, LoginError  # type: ignore[import-untyped]
from imapclient.imapclient import (  # type: ignore[import-untyped]
    ARCHIVE,
    DRAFTS,
    JUNK,
    SENT,
    TRASH,
)
from imapclient.response_types import Address, BodyData, Envelope  # type: ignore[import-untyped]

from lightmail.accounts.service import User
from lightmail.mailstore.store import Recipient
from tests.integration.imap.conftest import PASSWORD, ImapTarget

MESSAGE = (
    b"From: Bob Example <bob@example.org>\r\n"
    b"To: Alice <alice@example.org>, carol@example.net\r\n"
    b"Cc: Dave <dave@example.com>\r\n"
    b"Reply-To: lunch-list@example.org\r\n"
    b"Subject: Lunch on Friday\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
    b"In-Reply-To: <plans@example.org>\r\n"
    b"Message-ID: <lunch@example.org>\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
)

MULTIPART = (
    b"From: carol@example.org\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: Report\r\n"
    b"Date: Wed, 25 Nov 2026 09:30:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"See the attachment.\r\n"
    b"--XX\r\n"
    b"Content-Type: application/pdf; name=report.pdf\r\n"
    b"Content-Disposition: attachment; filename=report.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--XX--\r\n"
)

GREETINGS = (
    b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.de>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
    b"Date: Thu, 26 Nov 2026 08:00:00 +0100\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n" + "Der Dom lässt schön grüßen.\r\n".encode()
)

SYSTEM_FLAGS = (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft")
APPENDLIMIT = 16 * 1024 * 1024  # LIGHTMAIL_IMAP_MAX_APPEND_SIZE in the fixture
CAPABILITIES = (
    b"IMAP4REV1",
    b"IMAP4REV2",
    b"LITERAL+",
    b"SASL-IR",
    b"ID",
    b"ENABLE",
    b"IDLE",
    b"NAMESPACE",
    b"UNSELECT",
    b"UIDPLUS",
    b"MULTIAPPEND",
    b"MOVE",
    b"CHILDREN",
    b"SPECIAL-USE",
    b"LIST-EXTENDED",
    b"LIST-STATUS",
    b"STATUS=SIZE",
    b"CREATE-SPECIAL-USE",
    b"QUOTA",
    b"QUOTA=RES-STORAGE",
    b"CONDSTORE",
    b"QRESYNC",
    b"SORT",
    b"SORT=DISPLAY",
    b"THREAD=ORDEREDSUBJECT",
    b"THREAD=REFERENCES",
    b"OBJECTID",
    b"ESEARCH",
    b"ESORT",
    b"PARTIAL",
    b"SEARCHRES",
    b"UTF8=ACCEPT",
    b"BINARY",
    b"CATENATE",
    f"APPENDLIMIT={APPENDLIMIT}".encode(),
)


@contextmanager
def connect(target: ImapTarget, user: User | None = None) -> Iterator[Any]:
    """An IMAPClient over plain TCP, logged in as ``user`` when given, logged out after."""
    client = imapclient.IMAPClient(target.host, target.port, ssl=False, timeout=30)
    try:
        if user is not None:
            client.login(user.address, PASSWORD)
        yield client
    finally:
        try:
            client.logout()
        except (IMAPClientError, OSError):
            client.shutdown()


async def deliver(target: ImapTarget, user: User, message: bytes) -> None:
    async def source() -> AsyncIterator[bytes]:
        yield message

    await target.backend.store.deliver([Recipient(user.id, user.address)], source())


async def uidvalidity(target: ImapTarget, user: User, name: str = "INBOX") -> int:
    mailbox = await target.backend.store.get_mailbox(user.id, name)
    return mailbox.uidvalidity


def names_of(listing: list[tuple[Any, bytes, Any]]) -> list[Any]:
    """The names of a LIST or LSUB answer: str, or bytes with folder_encode off."""
    return [name for _, _, name in listing]


def listing_dict(listing: list[tuple[Any, bytes, str]]) -> dict[str, tuple[bytes, ...]]:
    """name -> attributes, checking the hierarchy delimiter on the way."""
    assert all(delimiter == b"/" for _, delimiter, _ in listing)
    return {name: tuple(flags) for flags, _, name in listing}


def visible(flags: Any) -> set[bytes]:
    """The flags other than ``\\Recent``, which test_recent_flag checks on its own."""
    return set(flags) - {b"\\Recent"}


def visible_all(flags: dict[int, Any]) -> dict[int, set[bytes]]:
    return {uid: visible(value) for uid, value in flags.items()}


DEFAULT_MAILBOXES = ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"]


# -- any state and not-authenticated state --------------------------------------


async def test_capability_noop_logout(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        client = imapclient.IMAPClient(imap.host, imap.port, ssl=False, timeout=30)
        try:
            talk(client)
        except BaseException:
            client.shutdown()
            raise

    def talk(client: Any) -> None:
        # Before login: the greeting's CAPABILITY code, with the AUTH= mechanisms.
        assert client.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
        assert client.capabilities() == (*CAPABILITIES, b"AUTH=PLAIN", b"AUTH=LOGIN")
        typ, data = client._imap.capability()
        assert typ == "OK"
        assert data[0].upper().split() == [*CAPABILITIES, b"AUTH=PLAIN", b"AUTH=LOGIN"]
        assert client.noop() == (b"completed", [])
        response = client.login(user.address, PASSWORD)
        assert response.startswith(b"[CAPABILITY IMAP4rev1 ")
        assert response.endswith(b"] Logged in")
        # After login the CAPABILITY code of LOGIN's OK: no AUTH= any more, and
        # COMPRESS=DEFLATE, a command of the authenticated state (RFC 4978).
        assert client.capabilities() == (*CAPABILITIES, b"COMPRESS=DEFLATE")
        typ, data = client._imap.capability()
        assert data[0].upper().split() == [*CAPABILITIES, b"COMPRESS=DEFLATE"]
        assert client.has_capability("UIDPLUS")
        assert not client.has_capability("STARTTLS")
        assert client.noop() == (b"completed", [])
        client.select_folder("INBOX")
        assert client.noop() == (b"completed", [])
        assert client.logout() == b"Logging out"

    await asyncio.to_thread(conversation)


async def test_login_and_authenticate_plain(imap: ImapTarget) -> None:
    user = await imap.new_user()
    other = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as client:
            with pytest.raises(LoginError, match=r"\[AUTHENTICATIONFAILED\]"):
                client.login(user.address, "wrong")
            # PLAIN with an authorization identity other than the user: refused.
            with pytest.raises(LoginError, match=r"\[AUTHENTICATIONFAILED\]"):
                client.plain_login(user.address, PASSWORD, other.address)
            response = client.plain_login(user.address, PASSWORD)
            assert re.fullmatch(rb"\[CAPABILITY IMAP4rev1 [^]]+\] Logged in", response)
            assert client.list_folders("", "INBOX") == [((b"\\HasNoChildren",), b"/", "INBOX")]
        with connect(imap) as client:
            # The authorization identity may repeat the authentication identity.
            client.plain_login(user.address, PASSWORD, user.address)
        with connect(imap) as client:
            client.login(user.address.upper(), PASSWORD)
            assert client.folder_status("INBOX", ["MESSAGES"]) == {b"MESSAGES": 0}

    await asyncio.to_thread(conversation)


# -- mailboxes --------------------------------------------------------------------


async def test_select_and_examine_responses(imap: ImapTarget) -> None:
    user = await imap.new_user()
    validity = await uidvalidity(imap, user)
    inbox = await imap.backend.store.get_mailbox(user.id, "INBOX")

    def conversation() -> None:
        with connect(imap, user) as client:
            client.append("INBOX", MESSAGE, flags=(b"\\Seen",))
            client.append("INBOX", MESSAGE, flags=(b"$Work",))
            client.append("INBOX", MULTIPART)
            selected = client.select_folder("INBOX")
            assert selected == {
                b"EXISTS": 3,
                b"RECENT": 3,
                b"FLAGS": (*SYSTEM_FLAGS, b"$Work"),
                b"PERMANENTFLAGS": (*SYSTEM_FLAGS, b"$Work", b"\\*"),
                b"UNSEEN": [b"2"],
                b"UIDVALIDITY": validity,
                b"UIDNEXT": 4,
                b"MAILBOXID": [b"(F%d)" % inbox.id],  # RFC 8474 section 4.2
                b"READ-WRITE": True,
            }
        with connect(imap, user) as client:
            # \Recent went to the first session; EXAMINE is read-only and says so.
            examined = client.select_folder("INBOX", readonly=True)
            assert examined[b"EXISTS"] == 3
            assert examined[b"RECENT"] == 0
            assert examined[b"PERMANENTFLAGS"] == ()
            assert examined[b"UIDVALIDITY"] == validity
            assert examined[b"UIDNEXT"] == 4
            assert b"READ-ONLY" in examined
            assert b"READ-WRITE" not in examined
            with pytest.raises(IMAPClientError, match=r"\[READ-ONLY\]"):
                client.add_flags([1], [b"\\Flagged"])
            # An empty mailbox: no UNSEEN code, UIDNEXT 1.
            archive = client.select_folder("Archive")
            assert archive[b"EXISTS"] == 0
            assert archive[b"UIDNEXT"] == 1
            assert archive[b"FLAGS"] == SYSTEM_FLAGS
            assert b"UNSEEN" not in archive
            with pytest.raises(IMAPClientError, match=r"\[NONEXISTENT\]"):
                client.select_folder("Nowhere")

    await asyncio.to_thread(conversation)


async def test_create_delete_rename(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap, user) as client:
            created = client.create_folder("Projects")  # RFC 8474 section 4.1
            assert re.fullmatch(rb"\[MAILBOXID \(F\d+\)\] Create completed", created)
            client.create_folder("Projects/2026")
            client.create_folder("Projects/2027/Q1")  # creates Projects/2027 too (6.3.3)
            assert client.folder_exists("Projects/2027")
            with pytest.raises(IMAPClientError, match=r"\[ALREADYEXISTS\]"):
                client.create_folder("Projects")
            with pytest.raises(IMAPClientError, match="create failed"):
                client.create_folder("inbox")
            assert client.rename_folder("Projects", "Work") == b"Rename completed"
            assert names_of(client.list_folders("", "Work*")) == [
                "Work",
                "Work/2026",
                "Work/2027",
                "Work/2027/Q1",
            ]
            assert client.list_folders("", "Projects*") == []
            with pytest.raises(IMAPClientError, match=r"\[ALREADYEXISTS\]"):
                client.rename_folder("Work/2026", "Work/2027")
            with pytest.raises(IMAPClientError, match=r"\[NONEXISTENT\]"):
                client.rename_folder("Nowhere", "Elsewhere")
            assert client.delete_folder("Work/2027/Q1") == b"Delete completed"
            # Deleting a name with inferiors leaves it as \Noselect (6.3.4).
            client.delete_folder("Work")
            assert listing_dict(client.list_folders("", "Work")) == {
                "Work": (b"\\Noselect", b"\\HasChildren")
            }
            with pytest.raises(IMAPClientError, match=r"\[NONEXISTENT\]"):
                client.delete_folder("Nowhere")
            with pytest.raises(IMAPClientError, match="delete failed"):
                client.delete_folder("INBOX")

    await asyncio.to_thread(conversation)


async def test_rename_inbox_moves_its_messages(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user, MESSAGE)
    await deliver(imap, user, MULTIPART)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.rename_folder("INBOX", "Old Inbox")
            # RFC 3501 6.3.5: INBOX stays, empty; the new name has the messages.
            assert "INBOX" in names_of(client.list_folders())
            assert client.folder_status("INBOX", ["MESSAGES", "UIDNEXT"]) == {
                b"MESSAGES": 0,
                b"UIDNEXT": 3,
            }
            old = client.select_folder("Old Inbox")
            assert old[b"EXISTS"] == 2
            fetched = client.fetch([1, 2], ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
            subjects = [d[b"BODY[HEADER.FIELDS (SUBJECT)]"] for d in fetched.values()]
            assert subjects == [b"Subject: Lunch on Friday\r\n\r\n", b"Subject: Report\r\n\r\n"]
            assert client.select_folder("INBOX")[b"EXISTS"] == 0

    await asyncio.to_thread(conversation)


async def test_subscribe_unsubscribe_lsub(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap, user) as client:
            assert sorted(names_of(client.list_sub_folders())) == DEFAULT_MAILBOXES
            client.create_folder("Lists/ietf")
            client.subscribe_folder("Lists/ietf")
            assert "Lists/ietf" in names_of(client.list_sub_folders())
            # "%" matches the unsubscribed parent, shown as \Noselect (6.3.9).
            top = listing_dict(client.list_sub_folders("", "%"))
            assert top["Lists"] == (b"\\Noselect",)
            assert "Lists/ietf" not in top
            assert listing_dict(client.list_sub_folders("Lists/", "%")) == {"Lists/ietf": ()}
            client.unsubscribe_folder("Lists/ietf")
            client.unsubscribe_folder("Junk")
            assert sorted(names_of(client.list_sub_folders())) == [
                n for n in DEFAULT_MAILBOXES if n != "Junk"
            ]

    await asyncio.to_thread(conversation)


async def test_list_wildcards_and_reference(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap, user) as client:
            client.create_folder("A/B/C")
            client.create_folder("A/D")
            client.create_folder("AB")
            everything = listing_dict(client.list_folders())
            assert sorted(everything) == sorted(
                [*DEFAULT_MAILBOXES, "A", "A/B", "A/B/C", "A/D", "AB"]
            )
            assert everything["A"] == (b"\\HasChildren",)
            assert everything["A/B/C"] == (b"\\HasNoChildren",)
            assert everything["INBOX"] == (b"\\HasNoChildren",)
            top = names_of(client.list_folders("", "%"))
            assert sorted(top) == sorted([*DEFAULT_MAILBOXES, "A", "AB"])
            # Reference + pattern (6.3.8): "A/" with "%" is one level below A.
            assert names_of(client.list_folders("A/", "%")) == ["A/B", "A/D"]
            assert names_of(client.list_folders("A/", "*")) == ["A/B", "A/B/C", "A/D"]
            # No delimiter added: "A" + "*" is "A*", which matches Archive too.
            assert names_of(client.list_folders("A", "*")) == [
                "A",
                "A/B",
                "A/B/C",
                "A/D",
                "AB",
                "Archive",
            ]
            assert names_of(client.list_folders("", "A/%/C")) == ["A/B/C"]
            assert names_of(client.list_folders("", "inbox")) == ["INBOX"]
            assert client.list_folders("", "Nothing*") == []
            # The empty pattern asks for the delimiter (6.3.8).
            assert client.list_folders("", "") == [((b"\\Noselect",), b"/", "")]

    await asyncio.to_thread(conversation)


async def test_non_ascii_folder_names_round_trip(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user, MESSAGE)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.create_folder("Entwürfe/Ärger")
            client.create_folder("日本語")
            listing = listing_dict(client.list_folders())
            assert listing["Entwürfe"] == (b"\\HasChildren",)
            assert listing["Entwürfe/Ärger"] == (b"\\HasNoChildren",)
            assert listing["日本語"] == (b"\\HasNoChildren",)
            assert names_of(client.list_folders("Entwürfe/", "%")) == ["Entwürfe/Ärger"]
            client.select_folder("INBOX")
            client.copy([1], "Entwürfe/Ärger")
            assert client.folder_status("Entwürfe/Ärger", ["MESSAGES"]) == {b"MESSAGES": 1}
            assert client.select_folder("Entwürfe/Ärger")[b"EXISTS"] == 1
            client.rename_folder("Entwürfe/Ärger", "Entwürfe/Größe")
            assert names_of(client.list_folders("Entwürfe/", "*")) == ["Entwürfe/Größe"]
            client.subscribe_folder("Entwürfe/Größe")
            assert "Entwürfe/Größe" in names_of(client.list_sub_folders())
            # On the wire the names are modified UTF-7 (RFC 3501 5.1.3).
            client.folder_encode = False
            raw = names_of(client.list_folders("", "Entw*"))
            assert raw == [b"Entw&APw-rfe", b"Entw&APw-rfe/Gr&APYA3w-e"]
            assert names_of(client.list_folders("", "&ZeVnLIqe-")) == [b"&ZeVnLIqe-"]
            # A name that is not valid modified UTF-7 is refused.
            with pytest.raises(IMAPClientError, match=r"\[CANNOT\]"):
                client.create_folder("Bad&name")

    await asyncio.to_thread(conversation)


async def test_special_use_attributes(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap, user) as client:
            listing = listing_dict(client.list_folders())
            assert listing == {
                "Archive": (b"\\HasNoChildren", b"\\Archive"),
                "Drafts": (b"\\HasNoChildren", b"\\Drafts"),
                "INBOX": (b"\\HasNoChildren",),
                "Junk": (b"\\HasNoChildren", b"\\Junk"),
                "Sent": (b"\\HasNoChildren", b"\\Sent"),
                "Trash": (b"\\HasNoChildren", b"\\Trash"),
            }
            assert client.find_special_folder(SENT) == "Sent"
            assert client.find_special_folder(TRASH) == "Trash"
            assert client.find_special_folder(DRAFTS) == "Drafts"
            assert client.find_special_folder(JUNK) == "Junk"
            assert client.find_special_folder(ARCHIVE) == "Archive"
            # The attribute follows the mailbox through RENAME.
            client.rename_folder("Sent", "Sent Items")
            assert listing_dict(client.list_folders("", "Sent*")) == {
                "Sent Items": (b"\\HasNoChildren", b"\\Sent")
            }
            assert client.find_special_folder(SENT) == "Sent Items"

    await asyncio.to_thread(conversation)


async def test_status_all_items(imap: ImapTarget) -> None:
    user = await imap.new_user()
    validity = await uidvalidity(imap, user)
    for message in (MESSAGE, MULTIPART, GREETINGS):
        await deliver(imap, user, message)

    def conversation() -> None:
        with connect(imap, user) as client:
            assert client.folder_status("INBOX") == {
                b"MESSAGES": 3,
                b"RECENT": 3,
                b"UIDNEXT": 4,
                b"UIDVALIDITY": validity,
                b"UNSEEN": 3,
            }
            client.select_folder("INBOX")
            client.add_flags([2], [b"\\Seen"])
            client.close_folder()
            # Our session claimed \Recent when it selected INBOX; UIDNEXT stays.
            assert client.folder_status("INBOX") == {
                b"MESSAGES": 3,
                b"RECENT": 0,
                b"UIDNEXT": 4,
                b"UIDVALIDITY": validity,
                b"UNSEEN": 2,
            }
            assert client.folder_status("Trash", ["UIDNEXT", "MESSAGES"]) == {
                b"UIDNEXT": 1,
                b"MESSAGES": 0,
            }
            with pytest.raises(IMAPClientError, match=r"\[NONEXISTENT\]"):
                client.folder_status("Nowhere")

    await asyncio.to_thread(conversation)


# -- APPEND -------------------------------------------------------------------------


async def test_append_with_flags_and_date(imap: ImapTarget) -> None:
    user = await imap.new_user()
    validity = await uidvalidity(imap, user, "Drafts")
    when = datetime(2026, 3, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))

    def conversation() -> None:
        with connect(imap, user) as client:
            response = client.append(
                "Drafts", MESSAGE, flags=(b"\\Draft", b"\\Seen", b"$Work"), msg_time=when
            )
            # RFC 4315: APPENDUID <uidvalidity> <uid>.
            assert response == f"[APPENDUID {validity} 1] Append completed".encode()
            response = client.append("Drafts", MULTIPART)
            assert response == f"[APPENDUID {validity} 2] Append completed".encode()
            client.select_folder("Drafts")
            client.normalise_times = False
            fetched = client.fetch([1, 2], ["FLAGS", "INTERNALDATE", "RFC822.SIZE"])
            first = fetched[1]
            assert visible(first[b"FLAGS"]) == {b"\\Draft", b"\\Seen", b"$Work"}
            assert first[b"INTERNALDATE"] == when
            assert first[b"INTERNALDATE"].utcoffset() == when.utcoffset()  # in its own zone
            assert first[b"RFC822.SIZE"] == len(MESSAGE)
            second = fetched[2]
            assert visible(second[b"FLAGS"]) == set()
            now = datetime.now(UTC)
            assert abs(second[b"INTERNALDATE"] - now) < timedelta(minutes=5)
            body = client.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"]
            assert body == MESSAGE
            with pytest.raises(IMAPClientError, match=r"\[TRYCREATE\]"):
                client.append("Nowhere", MESSAGE)

    await asyncio.to_thread(conversation)


# -- selected state ---------------------------------------------------------------


async def test_recent_flag(imap: ImapTarget) -> None:
    """\\Recent is a session flag: set for the first session to see a message (2.3.2)."""
    user = await imap.new_user()
    await deliver(imap, user, MESSAGE)
    await deliver(imap, user, MULTIPART)

    def conversation() -> None:
        with connect(imap, user) as first, connect(imap, user) as second:
            assert first.select_folder("INBOX")[b"RECENT"] == 2
            assert first.search(["RECENT"]) == [1, 2]
            assert first.search(["NEW"]) == [1, 2]
            assert second.select_folder("INBOX")[b"RECENT"] == 0
            assert second.search(["RECENT"]) == []
            assert second.search(["OLD"]) == [1, 2]
            assert second.get_flags([1, 2]) == {1: (), 2: ()}
            # RFC 3501 2.3.2 and 6.3.1: "The only reliable way to identify recent
            # messages is to look at message flags to see which have the \Recent
            # flag set"; flag-fetch = flag / "\Recent" (section 9).
            assert first.get_flags([1, 2]) == {1: (b"\\Recent",), 2: (b"\\Recent",)}
            stored = first.add_flags([1], [b"\\Seen"])
            assert set(stored[1]) == {b"\\Seen", b"\\Recent"}
            assert first.search(["NEW"]) == [2]
            # \Recent cannot be stored (2.3.2): STORE leaves it as it was.
            first.set_flags([2], [b"\\Flagged"])
            assert set(first.get_flags([2])[2]) == {b"\\Flagged", b"\\Recent"}

    await asyncio.to_thread(conversation)


async def test_check_unselect_close(imap: ImapTarget) -> None:
    user = await imap.new_user()
    for _ in range(3):
        await deliver(imap, user, MESSAGE)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.select_folder("INBOX")
            client.delete_messages([1, 2])
            typ, data = client._imap.check()
            assert (typ, data) == ("OK", [b"completed"])
            # UNSELECT leaves \Deleted messages alone (RFC 3691).
            assert client.unselect_folder() == b"Unselect completed"
            assert client.select_folder("INBOX")[b"EXISTS"] == 3
            # CLOSE expunges silently (6.4.2), and leaves the selected state.
            client._imap.untagged_responses.clear()
            assert client.close_folder() == b"Close completed"
            assert "EXPUNGE" not in client._imap.untagged_responses
            assert client.select_folder("INBOX")[b"EXISTS"] == 1
            assert client.search() == [3]
            # CLOSE after EXAMINE expunges nothing.
            client.delete_messages([3])
            client.select_folder("INBOX", readonly=True)
            client.close_folder()
            assert client.folder_status("INBOX", ["MESSAGES"]) == {b"MESSAGES": 1}

    await asyncio.to_thread(conversation)


async def test_expunge_and_uid_expunge(imap: ImapTarget) -> None:
    user = await imap.new_user()
    for _ in range(5):
        await deliver(imap, user, MESSAGE)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.select_folder("INBOX")
            client.delete_messages([2, 3])
            text, responses = client.expunge()
            assert text == b"Expunge completed"
            # Highest first, so each number is still valid when sent (7.4.1).
            assert responses == [(3, b"EXPUNGE"), (2, b"EXPUNGE")]
            assert client.search() == [1, 4, 5]
            # UID EXPUNGE removes only the named \Deleted messages (RFC 4315 2.1).
            client.delete_messages([1, 4, 5])
            client._imap.untagged_responses.clear()
            client.uid_expunge([4, 5])
            assert client._imap.untagged_responses.get("EXPUNGE") == [b"3", b"2"]
            assert client.search() == [1]
            assert visible_all(client.get_flags([1])) == {1: {b"\\Deleted"}}
            # UIDs that are not there are skipped without complaint.
            client.uid_expunge([99])
            assert client.search() == [1]
            client.select_folder("INBOX", readonly=True)
            with pytest.raises(IMAPClientError, match=r"\[READ-ONLY\]"):
                client.expunge()

    await asyncio.to_thread(conversation)


async def test_search_criteria(imap: ImapTarget) -> None:
    user = await imap.new_user()
    # UID 1 is expunged below, so sequence numbers and UIDs differ by one.
    for message in (MESSAGE, MESSAGE, MULTIPART, GREETINGS, MESSAGE):
        await deliver(imap, user, message)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.select_folder("INBOX")
            client.delete_messages([1])
            client.expunge()
            client.add_flags([2], [b"\\Flagged", b"\\Seen"])
            client.add_flags([5], [b"Important"])
            assert client.search() == [2, 3, 4, 5]  # UID SEARCH ALL
            assert client.search(["FROM", "bob"]) == [2, 5]
            assert client.search(["NOT", "FROM", "bob"]) == [3, 4]
            assert client.search(["SUBJECT", "LUNCH"]) == [2, 5]
            assert client.search(["TO", "alice@example.org"]) == [2, 3, 4, 5]
            assert client.search(["CC", "dave"]) == [2, 5]
            assert client.search(["HEADER", "Message-ID", "<lunch@"]) == [2, 5]
            assert client.search(["BODY", "noon"]) == [2, 5]
            assert client.search(["TEXT", "report.pdf"]) == [3]
            assert client.search(["FLAGGED"]) == [2]
            assert client.search(["UNSEEN"]) == [3, 4, 5]
            assert client.search(["KEYWORD", "Important"]) == [5]
            assert client.search(["UNKEYWORD", "Important", "UNFLAGGED"]) == [3, 4]
            assert client.search(["OR", "FLAGGED", "SUBJECT", "report"]) == [2, 3]
            assert client.search(["SENTON", date(2026, 11, 25)]) == [3]
            assert client.search(["SENTSINCE", date(2026, 11, 25)]) == [3, 4]
            assert client.search(["SENTBEFORE", date(2026, 11, 25)]) == [2, 5]
            assert client.search(["SINCE", date.today() - timedelta(days=1)]) == [2, 3, 4, 5]
            assert client.search(["BEFORE", date(2000, 1, 1)]) == []
            assert client.search(["LARGER", len(MULTIPART) - 1]) == [3]
            assert client.search(["SMALLER", len(GREETINGS) + 1]) == [4]
            assert client.search(["UID", "3:*"]) == [3, 4, 5]
            assert client.search(["NOT", ["SUBJECT", "lunch", "FLAGGED"]]) == [3, 4, 5]
            # Sequence numbers, not UIDs.
            client.use_uid = False
            assert client.search() == [1, 2, 3, 4]
            assert client.search(["FROM", "bob"]) == [1, 4]
            assert client.search(["2:3"]) == [2, 3]
            assert client.search(["UID", "4"]) == [3]
            assert client.search(["1:*", "NOT", "1"]) == [2, 3, 4]
            with pytest.raises(IMAPClientError, match=r"\[BADCHARSET"):
                client.search(["SUBJECT", "x"], charset="ISO-8859-1")

    await asyncio.to_thread(conversation)


async def test_search_utf8_charset(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user, MESSAGE)
    await deliver(imap, user, GREETINGS)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.select_folder("INBOX")
            # Non-ASCII criteria go out as literals (LITERAL+) in UTF-8.
            assert client.search(["SUBJECT", "Grüße"], charset="UTF-8") == [2]
            # Unicode case folding: "ß" and "SS" are the same (casefold).
            assert client.search(["SUBJECT", "GRÜSSE"], charset="UTF-8") == [2]
            assert client.search(["SUBJECT", "köln"], charset="UTF-8") == [2]
            assert client.search(["FROM", "Jürgen Müller"], charset="UTF-8") == [2]
            assert client.search(["BODY", "schön grüßen"], charset="UTF-8") == [2]
            assert client.search(["TEXT", "Grüße aus"], charset="UTF-8") == [2]
            assert client.search(["NOT", "SUBJECT", "Grüße"], charset="UTF-8") == [1]
            assert client.search(["SUBJECT", "lunch"], charset="UTF-8") == [1]
            assert client.search(["SUBJECT", "lunch"], charset="US-ASCII") == [1]

    await asyncio.to_thread(conversation)


async def test_fetch_envelope_bodystructure_and_metadata(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user, MESSAGE)
    await deliver(imap, user, MULTIPART)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.select_folder("INBOX")
            client.normalise_times = False
            items = ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE"]
            fetched = client.fetch([1, 2], items)
            assert sorted(fetched) == [1, 2]
            first, second = fetched[1], fetched[2]
            assert first[b"SEQ"] == 1
            assert visible(first[b"FLAGS"]) == set()
            assert first[b"RFC822.SIZE"] == len(MESSAGE)
            assert second[b"RFC822.SIZE"] == len(MULTIPART)
            internaldate = first[b"INTERNALDATE"]
            assert isinstance(internaldate, datetime)
            assert abs(internaldate - datetime.now(UTC)) < timedelta(minutes=5)

            envelope = first[b"ENVELOPE"]
            assert isinstance(envelope, Envelope)
            assert envelope.date == datetime(
                2026, 11, 24, 10, 0, tzinfo=timezone(timedelta(hours=1))
            )
            assert envelope.subject == b"Lunch on Friday"
            bob = Address(b"Bob Example", None, b"bob", b"example.org")
            assert envelope.from_ == (bob,)
            assert envelope.sender == (bob,)  # defaults to From (7.4.2)
            assert envelope.reply_to == (Address(None, None, b"lunch-list", b"example.org"),)
            assert envelope.to == (
                Address(b"Alice", None, b"alice", b"example.org"),
                Address(None, None, b"carol", b"example.net"),
            )
            assert envelope.cc == (Address(b"Dave", None, b"dave", b"example.com"),)
            assert envelope.bcc is None
            assert envelope.in_reply_to == b"<plans@example.org>"
            assert envelope.message_id == b"<lunch@example.org>"
            assert str(envelope.from_[0]) == "Bob Example <bob@example.org>"

            report = second[b"ENVELOPE"]
            carol = (Address(None, None, b"carol", b"example.org"),)
            assert (report.from_, report.sender, report.reply_to) == (carol, carol, carol)
            assert report.cc is None
            assert report.message_id is None

            plain = first[b"BODYSTRUCTURE"]
            assert isinstance(plain, BodyData)
            assert not plain.is_multipart
            body_lines = 1
            body_size = len(b"Shall we meet at noon?\r\n")
            assert tuple(plain[:8]) == (
                b"TEXT",
                b"PLAIN",
                (b"CHARSET", b"US-ASCII"),  # the default (RFC 2045 5.2)
                None,
                None,
                b"7BIT",
                body_size,
                body_lines,
            )

            structure = second[b"BODYSTRUCTURE"]
            assert structure.is_multipart
            text, pdf = structure[0]
            assert tuple(text[:8]) == (
                b"TEXT",
                b"PLAIN",
                (b"CHARSET", b"utf-8"),
                None,
                None,
                b"7BIT",
                len(b"See the attachment."),
                0,  # body-fld-lines counts line ends; the last CRLF is the boundary's
            )
            assert tuple(pdf[:7]) == (
                b"APPLICATION",
                b"PDF",
                (b"NAME", b"report.pdf"),
                None,
                None,
                b"BASE64",
                len(b"JVBERi0xLjQK"),
            )
            assert structure[1] == b"MIXED"
            assert structure[2] == (b"BOUNDARY", b"XX")
            # FETCH BODY is the non-extensible form: no MD5/disposition/language.
            body = client.fetch([2], ["BODY"])[2][b"BODY"]
            assert body.is_multipart
            assert body[1] == b"MIXED"
            assert len(body) == 2
            # Nothing above set \Seen.
            assert visible_all(client.get_flags([1, 2])) == {1: set(), 2: set()}

    await asyncio.to_thread(conversation)


async def test_fetch_body_sections(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user, MESSAGE)
    await deliver(imap, user, MULTIPART)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.select_folder("INBOX")
            header = client.fetch([1], ["BODY.PEEK[HEADER.FIELDS (SUBJECT FROM X-NONE)]"])
            assert header[1][b"BODY[HEADER.FIELDS (SUBJECT FROM X-NONE)]"] == (
                b"From: Bob Example <bob@example.org>\r\nSubject: Lunch on Friday\r\n\r\n"
            )
            others = client.fetch([1], ["BODY.PEEK[HEADER.FIELDS.NOT (TO CC REPLY-TO)]"])
            value = others[1][b"BODY[HEADER.FIELDS.NOT (TO CC REPLY-TO)]"]
            assert value.startswith(b"From: Bob Example")
            assert b"\r\nTo:" not in value
            assert b"\r\nCc:" not in value
            assert b"\r\nReply-To:" not in value
            assert b"\r\nIn-Reply-To: <plans@example.org>\r\n" in value
            assert b"Subject: Lunch on Friday\r\n" in value
            assert value.endswith(b"\r\n\r\n")
            # Partial fetch: <0.10> is the first 10 octets, answered as BODY[]<0>.
            partial = client.fetch([1], ["BODY.PEEK[]<0.10>"])[1]
            assert partial[b"BODY[]<0>"] == MESSAGE[:10]
            partial = client.fetch([1], ["BODY.PEEK[TEXT]<6.3>"])[1]
            assert partial[b"BODY[TEXT]<6>"] == b"we "
            past_end = client.fetch([1], ["BODY.PEEK[]<100000.10>"])[1]
            assert past_end[b"BODY[]<100000>"] == b""
            sections = client.fetch(
                [2], ["BODY.PEEK[1]", "BODY.PEEK[2]", "BODY.PEEK[2.MIME]", "BODY.PEEK[HEADER]"]
            )[2]
            # The CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1).
            assert sections[b"BODY[1]"] == b"See the attachment."
            assert sections[b"BODY[2]"] == b"JVBERi0xLjQK"
            assert sections[b"BODY[2.MIME]"].startswith(b"Content-Type: application/pdf")
            assert sections[b"BODY[2.MIME]"].endswith(b"\r\n\r\n")
            assert sections[b"BODY[HEADER]"] == MULTIPART.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
            assert visible_all(client.get_flags([2])) == {2: set()}
            # BODY[1] without PEEK sets \Seen and reports it in the same FETCH.
            fetched = client.fetch([2], ["BODY[1]"])[2]
            assert fetched[b"BODY[1]"] == b"See the attachment."
            assert visible(fetched[b"FLAGS"]) == {b"\\Seen"}
            whole = client.fetch([1], ["RFC822"])[1]
            assert whole[b"RFC822"] == MESSAGE
            assert visible(client.get_flags([1])[1]) == {b"\\Seen"}

    await asyncio.to_thread(conversation)


async def test_store_flags_and_keywords(imap: ImapTarget) -> None:
    user = await imap.new_user()
    for _ in range(3):
        await deliver(imap, user, MESSAGE)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.select_folder("INBOX")
            client.use_uid = True
            # UID STORE +FLAGS: the FETCH responses carry UID and the new flags.
            added = client.add_flags([1, 2], [b"\\Flagged", b"$Label1"])
            assert visible_all(added) == {
                1: {b"\\Flagged", b"$Label1"},
                2: {b"\\Flagged", b"$Label1"},
            }
            removed = client.remove_flags([2], [b"$Label1"])
            assert visible(removed[2]) == {b"\\Flagged"}
            replaced = client.set_flags([3], [b"\\Answered", b"Important", b"\\Draft"])
            assert visible(replaced[3]) == {b"\\Answered", b"Important", b"\\Draft"}
            assert client.add_flags([3], [b"\\Seen"], silent=True) is None
            assert visible(client.get_flags([3])[3]) == {
                b"\\Answered",
                b"Important",
                b"\\Draft",
                b"\\Seen",
            }
            # System flags are case-insensitive.
            client.remove_flags([3], [b"\\draft", b"\\SEEN"])
            assert visible(client.get_flags([3])[3]) == {b"\\Answered", b"Important"}
            client.set_flags([1], [])
            assert visible_all(client.get_flags([1])) == {1: set()}
            # STORE by sequence number.
            client.use_uid = False
            client.add_flags([1], [b"\\Seen"])
            client.use_uid = True
            assert visible(client.get_flags([1])[1]) == {b"\\Seen"}
            # Keywords stay defined in the mailbox (FLAGS/PERMANENTFLAGS), also $Label1
            # that no message has any more, until the mailbox needs the room.
            selected = client.select_folder("INBOX")
            assert selected[b"FLAGS"] == (*SYSTEM_FLAGS, b"$Label1", b"Important")
            assert selected[b"PERMANENTFLAGS"] == (
                *SYSTEM_FLAGS,
                b"$Label1",
                b"Important",
                b"\\*",
            )
            assert client.search(["KEYWORD", "important"]) == [3]
            assert client.search(["KEYWORD", "$Label1"]) == []
            with pytest.raises(IMAPClientError, match="BAD"):
                client.add_flags([1], [b"\\Bogus("])

    await asyncio.to_thread(conversation)


async def test_copy_and_move(imap: ImapTarget) -> None:
    user = await imap.new_user()
    archive = await uidvalidity(imap, user, "Archive")
    trash = await uidvalidity(imap, user, "Trash")
    for _ in range(4):
        await deliver(imap, user, MESSAGE)

    def conversation() -> None:
        with connect(imap, user) as client:
            client.select_folder("INBOX")
            client.add_flags([2], [b"\\Flagged"])
            client._imap.untagged_responses.clear()
            client.copy([1, 2], "Archive")
            # imaplib files the tagged OK's response code under its name.
            copyuid = client._imap.untagged_responses.pop("COPYUID")
            assert copyuid == [f"{archive} 1:2 1:2".encode()]
            assert client.search() == [1, 2, 3, 4]
            with pytest.raises(IMAPClientError, match=r"\[TRYCREATE\]"):
                client.copy([1], "Nowhere")
            # MOVE (RFC 6851): COPYUID in an untagged OK, then EXPUNGE.
            client._imap.untagged_responses.clear()
            client.move([2, 4], "Trash")
            untagged = client._imap.untagged_responses
            assert untagged["COPYUID"] == [f"{trash} 2,4 1:2".encode()]
            assert untagged["EXPUNGE"] == [b"4", b"2"]
            assert client.search() == [1, 3]
            client.select_folder("Trash")
            fetched = client.fetch([1, 2], ["FLAGS"])
            assert {k: visible(v[b"FLAGS"]) for k, v in fetched.items()} == {
                1: {b"\\Flagged"},
                2: set(),
            }
            client.select_folder("Archive")
            assert client.search(["FLAGGED"]) == [2]
            # Sequence-number COPY.
            client.use_uid = False
            client.copy([1], "Trash")
            assert client.folder_status("Trash", ["MESSAGES", "UIDNEXT"]) == {
                b"MESSAGES": 3,
                b"UIDNEXT": 4,
            }

    await asyncio.to_thread(conversation)


async def test_idle_sees_a_delivery(imap: ImapTarget) -> None:
    user = await imap.new_user()
    await deliver(imap, user, MESSAGE)
    loop = asyncio.get_running_loop()

    def conversation() -> None:
        with connect(imap, user) as client:
            assert client.select_folder("INBOX")[b"EXISTS"] == 1
            client.idle()
            assert client.idle_check(timeout=0.2) == []
            asyncio.run_coroutine_threadsafe(deliver(imap, user, MULTIPART), loop).result(10)
            responses = client.idle_check(timeout=5)
            assert responses[0] == (2, b"EXISTS")
            text, more = client.idle_done()
            assert text == b"Idle completed"
            assert [*responses, *more] == [(2, b"EXISTS"), (2, b"RECENT")]
            # After DONE the session is back to normal.
            assert client.search() == [1, 2]
            # Flag changes from another session show up in IDLE too.
            client.idle()
            with connect(imap, user) as other:
                other.select_folder("INBOX")
                other.add_flags([1], [b"\\Flagged"])
            responses = client.idle_check(timeout=5)
            text, more = client.idle_done()
            updates: list[Any] = [*responses, *more]
            assert len(updates) == 1
            seq, kind, (uid_item, uid, flags_item, flags) = updates[0]
            assert (seq, kind, uid_item, uid, flags_item) == (1, b"FETCH", b"UID", 1, b"FLAGS")
            assert visible(flags) == {b"\\Flagged"}

    await asyncio.to_thread(conversation)


async def test_id_namespace_enable(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as client:
            # ID works before login (RFC 2971).
            server_id = client.id_({"name": "imapclient", "version": imapclient.__version__})
            assert server_id[0][:2] == (b"name", b"LightMail")
            assert server_id[0][2] == b"version"
            client.login(user.address, PASSWORD)
            assert client.id_() == server_id
            namespace = client.namespace()
            assert namespace == (((("", "/"),), None, None))
            assert namespace.personal == (("", "/"),)
            assert namespace.other is None
            assert namespace.shared is None
            # RFC 5161: ENABLED lists what was enabled; unknown names are ignored.
            assert client.enable("CONDSTORE", "X-UNKNOWN") == [b"CONDSTORE"]
            assert client.enable("UTF8=ACCEPT", "X-UNKNOWN") == [b"UTF8=ACCEPT"]
            assert client.enable("UTF8=ACCEPT") == []  # already enabled

    await asyncio.to_thread(conversation)
