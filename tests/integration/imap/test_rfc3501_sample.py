"""RFC 3501 section 8, "Sample IMAP4rev1 connection", replayed over a raw socket.

The command sequence is the RFC's (with CAPABILITY first): CAPABILITY, LOGIN,
SELECT, FETCH 12 FULL, FETCH 12 BODY[HEADER], STORE 12 +FLAGS \\Deleted,
LOGOUT. The mailbox is prepared so that the server's answers can match the
sample's as closely as they can: 18 messages, the last 2 recent, 17 the first
unseen, and message 12 is the sample's "IMAP4rev1 WG mtg summary and minutes"
with the same 342-octet header and a 3028-octet, 92-line body, \\Seen, with
the sample's internal date. What cannot match is adapted:

* our greeting text, capability list and response texts;
* SELECT also sends PERMANENTFLAGS and UIDNEXT (RFC 3501 6.3.1 requires
  both; the sample predates that), and our own UIDVALIDITY;
* RFC822.SIZE is 342 + 3028 = 3370 (the sample's 4286 counts octets we do
  not know);
* INTERNALDATE is the sample's, in the zone it was given in.

Every server line is checked against a regex built from the section 9
grammar, and then against the exact value where we know it.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

from tests.integration.imap.conftest import PASSWORD, ImapTarget

HEADER = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
)
# 91 lines of 33 octets and one of 25: 3028 octets in 92 lines, as in the sample.
BODY = b"".join(f"Minutes line {n:03d} of the meeting.."[:31].encode() + b"\r\n" for n in range(91))
BODY += b"Thanks, and see you all.\r\n"[:23] + b"\r\n"
SAMPLE = HEADER + BODY
INTERNALDATE = datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))


def filler(n: int) -> bytes:
    return (
        f"From: someone@example.org\r\nSubject: message {n}\r\n"
        f"Date: Tue, 16 Jul 1996 10:00:00 -0700\r\n\r\nBody {n}\r\n"
    ).encode()


# -- RFC 3501 section 9, as regexes ----------------------------------------------------

TAG_OK = rb"(?P<tag>[^\s(){%*\"\\+]+) OK(?: \[(?P<code>[^\]]*)\])? (?P<text>[^\r\n]+)"
ATOM = rb"[^\s(){%*\"\\\]\x00-\x1f\x7f]+"
QUOTED = rb'"(?:[^"\\\r\n]|\\["\\])*"'
NSTRING = rb"(?:NIL|" + QUOTED + rb")"
NUMBER = rb"[0-9]+"
FLAG = rb"(?:\\(?:Answered|Flagged|Deleted|Seen|Draft)|" + ATOM + rb")"
FLAG_FETCH = rb"(?:" + FLAG + rb"|\\Recent)"
FLAG_LIST = rb"\((?:" + FLAG_FETCH + rb"(?: " + FLAG_FETCH + rb")*)?\)"
FLAG_PERM = rb"(?:" + FLAG + rb"|\\\*)"
DATE_TIME = rb'"(?: [0-9]|[0-9]{2})-[A-Z][a-z]{2}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}"'
ADDRESS = rb"\(" + rb" ".join([NSTRING] * 4) + rb"\)"
ENV_ADDRESSES = rb"(?:NIL|\((?:" + ADDRESS + rb")+\))"
ENVELOPE = rb"\(" + rb" ".join([NSTRING, NSTRING, *[ENV_ADDRESSES] * 6, NSTRING, NSTRING]) + rb"\)"
BODY_FLD_PARAM = (
    rb"(?:NIL|\(" + QUOTED + rb" " + QUOTED + rb"(?: " + QUOTED + rb" " + QUOTED + rb")*\))"
)
# body-type-text without extension data (FETCH BODY): media-text SP body-fields SP body-fld-lines
BODY_TYPE_TEXT = (
    rb'\("TEXT" '
    + QUOTED
    + rb" "
    + BODY_FLD_PARAM
    + rb" "
    + NSTRING
    + rb" "
    + NSTRING
    + rb" "
    + QUOTED
    + rb" "
    + NUMBER
    + rb" "
    + NUMBER
    + rb"\)"
)
FULL = (
    rb"\* (?P<seq>[1-9][0-9]*) FETCH \("
    rb"FLAGS (?P<flags>" + FLAG_LIST + rb") "
    rb"INTERNALDATE (?P<internaldate>" + DATE_TIME + rb") "
    rb"RFC822\.SIZE (?P<size>" + NUMBER + rb") "
    rb"ENVELOPE (?P<envelope>" + ENVELOPE + rb") "
    rb"BODY (?P<body>" + BODY_TYPE_TEXT + rb")"
    rb"\)"
)


class Wire:
    """One raw IMAP connection: send lines, read lines and literals."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def send(self, line: bytes) -> None:
        self.sock.sendall(line + b"\r\n")

    def line(self) -> bytes:
        """The next line, which must end in CRLF, without it."""
        raw = self.reader.readline(100_000)
        assert raw.endswith(b"\r\n"), raw
        return raw[:-2]

    def expect(self, pattern: bytes) -> re.Match[bytes]:
        line = self.line()
        match = re.fullmatch(pattern, line)
        assert match is not None, (pattern, line)
        return match

    def read(self, size: int) -> bytes:
        data = self.reader.read(size)
        assert len(data) == size
        return data


async def test_rfc3501_section8_sample_session(imap: ImapTarget) -> None:
    user = await imap.new_user()
    store = imap.backend.store

    async def append(message: bytes, flags: list[str], when: datetime | None = None) -> int:
        async def source() -> AsyncIterator[bytes]:
            yield message

        result = await store.append(user.id, "INBOX", source(), flags=flags, internaldate=when)
        return result.uid

    assert len(HEADER) == 342
    assert (len(BODY), BODY.count(b"\r\n")) == (3028, 92)
    for n in range(1, 17):
        if n == 12:
            await append(SAMPLE, ["\\Seen"], INTERNALDATE)
        else:
            await append(filler(n), ["\\Seen"])
    inbox = await store.get_mailbox(user.id, "INBOX")
    await store.claim_recent(inbox)  # an earlier session saw messages 1-16
    await append(filler(17), [])
    await append(filler(18), [])

    def conversation() -> None:
        with socket.create_connection((imap.host, imap.port), timeout=10) as sock:
            wire = Wire(sock)
            # S: * OK IMAP4rev1 Service Ready
            greeting = wire.expect(rb"\* OK \[CAPABILITY (?P<caps>[^\]]+)\] (?P<text>.+)")
            greeting_caps = greeting["caps"].split()
            assert greeting_caps[0] == b"IMAP4rev1"
            assert b"AUTH=PLAIN" in greeting_caps

            # C: a000 CAPABILITY (not in the sample; RFC 3501 6.1.1)
            wire.send(b"a000 CAPABILITY")
            capability = wire.expect(rb"\* CAPABILITY (?P<caps>" + ATOM + rb"(?: " + ATOM + rb")*)")
            assert capability["caps"].split() == greeting_caps
            assert b"IMAP4rev1" in capability["caps"].split()
            wire.expect(rb"a000 OK .+")

            # C: a001 login mrc secret
            wire.send(b"a001 login " + user.address.encode() + b" " + PASSWORD.encode())
            login = wire.expect(TAG_OK)
            assert login["tag"] == b"a001"
            assert login["code"] is not None
            assert login["code"].startswith(b"CAPABILITY IMAP4rev1 ")
            assert b"AUTH=PLAIN" not in login["code"].split()

            # C: a002 select inbox
            wire.send(b"a002 select inbox")
            untagged: list[bytes] = []
            line = wire.line()
            while not line.startswith(b"a002 "):
                untagged.append(line)
                line = wire.line()
            select_ok = re.fullmatch(TAG_OK, line)
            assert select_ok is not None, line
            assert select_ok["code"] == b"READ-WRITE"
            for response in untagged:
                assert re.fullmatch(
                    rb"\* (?:[0-9]+ (?:EXISTS|RECENT)"
                    rb"|FLAGS " + FLAG_LIST + rb"|OK \[[A-Z-]+(?: [^\]]*)?\] .+)",
                    response,
                ), response
            assert b"* 18 EXISTS" in untagged
            assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)" in untagged
            assert b"* 2 RECENT" in untagged
            codes = {
                m[1]: m[2]
                for m in (re.fullmatch(rb"\* OK \[([A-Z-]+) ?([^\]]*)\] .+", r) for r in untagged)
                if m is not None
            }
            assert codes[b"UNSEEN"] == b"17"
            assert codes[b"UIDVALIDITY"] == str(inbox.uidvalidity).encode()
            assert codes[b"UIDNEXT"] == b"19"
            assert codes[b"MAILBOXID"] == b"(F%d)" % inbox.id  # RFC 8474 section 4.2
            assert codes[b"PERMANENTFLAGS"] == (
                b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)"
            )
            assert re.fullmatch(
                rb"\(" + FLAG_PERM + rb"(?: " + FLAG_PERM + rb")*\)", codes[b"PERMANENTFLAGS"]
            )
            assert len(untagged) == 8

            # C: a003 fetch 12 full
            wire.send(b"a003 fetch 12 full")
            full = wire.expect(FULL)
            assert full["seq"] == b"12"
            assert full["flags"] == b"(\\Seen)"
            assert full["internaldate"] == b'"17-Jul-1996 02:44:25 -0700"'
            assert full["size"] == b"3370"
            assert full["envelope"] == (
                b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
                b'"IMAP4rev1 WG mtg summary and minutes" '
                b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
                b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
                b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
                b'((NIL NIL "imap" "cac.washington.edu")) '
                # env-cc = "(" 1*address ")": no space between addresses (the
                # sample's line break there is editorial).
                b'((NIL NIL "minutes" "CNRI.Reston.VA.US")'
                b'("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
                b'"<B27397-0100000@cac.washington.edu>")'
            )
            assert full["body"] == b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
            assert wire.expect(TAG_OK)["tag"] == b"a003"

            # C: a004 fetch 12 body[header]
            wire.send(b"a004 fetch 12 body[header]")
            head = wire.expect(rb"\* 12 FETCH \(BODY\[HEADER\] \{(?P<size>[0-9]+)\}")
            assert head["size"] == b"342"
            assert wire.read(342) == HEADER
            # \Seen was set already, so no FLAGS follows the literal.
            assert wire.line() == b")"
            assert wire.expect(TAG_OK)["tag"] == b"a004"

            # C: a005 store 12 +flags \deleted
            wire.send(b"a005 store 12 +flags \\deleted")
            stored = wire.expect(rb"\* 12 FETCH \(FLAGS (?P<flags>" + FLAG_LIST + rb")\)")
            assert stored["flags"] == b"(\\Seen \\Deleted)"
            assert wire.expect(TAG_OK)["tag"] == b"a005"

            # C: a006 logout
            wire.send(b"a006 logout")
            wire.expect(rb"\* BYE .+")
            assert wire.expect(TAG_OK)["tag"] == b"a006"
            assert wire.reader.read() == b""  # and the server closes the connection

    await asyncio.to_thread(conversation)
