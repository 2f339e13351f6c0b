"""BINARY (RFC 3516) over a raw socket: decoded FETCH, BINARY.SIZE, literal8 both ways.

The test message has a quoted-printable text part, a small base64 part with NUL,
a part in an encoding no one can undo, an attached message, and a base64 part
large enough to be streamed from the blob store rather than sent inline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re

import pytest

from tests.integration.imap.conftest import ImapFactory, ImapTarget
from tests.integration.imap.test_hostile import Wire, connect, login, still_usable

TEXT = "Grüße, café.\r\nZweite Zeile mit = Zeichen.\r\n".encode()
SMALL = b"\x00\x01\x02binary\x00\xff\r\n\x00"
LARGE = bytes(range(256)) * 400  # 102400 octets, NUL included
LARGE_TEXT = b"line of text without NUL\r\n" * 4000  # 104000 octets


def part(content_type: bytes, encoding: bytes, body: bytes) -> bytes:
    return (
        b"--b\r\nContent-Type: " + content_type + b"\r\n"
        b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body + b"\r\n"
    )


MESSAGE = (
    b"From: ann@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    + part(b"text/plain; charset=utf-8", b"quoted-printable", binascii.b2a_qp(TEXT))
    + part(b"application/octet-stream", b"base64", base64.encodebytes(SMALL))
    + part(b"application/x-thing", b"x-uuencode", b"begin 644 thing\r\n`\r\nend")
    + part(b"message/rfc822", b"7bit", b"Subject: inner\r\n\r\ninner body")
    + part(b"application/octet-stream", b"base64", base64.encodebytes(LARGE))
    + part(b"text/plain", b"base64", base64.encodebytes(LARGE_TEXT))
    + b"--b--\r\n"
)


def read_response(wire: Wire) -> tuple[bytes, list[bytes]]:
    """One response: its text with each literal's data replaced by ``<n>``, and
    the literals' data; ``~{n}`` marks a literal8."""
    text = b""
    literals: list[bytes] = []
    while True:
        line = wire.line()
        literal = re.search(rb"~?\{([0-9]+)\}$", line)
        if literal is None:
            return text + line, literals
        literals.append(wire.reader.read(int(literal[1])))
        text += line + b"<%d>" % len(literals)


def fetch(wire: Wire, command: bytes) -> tuple[list[tuple[bytes, list[bytes]]], bytes]:
    """The untagged responses to ``t FETCH ...`` and the tagged one."""
    wire.send(b"t " + command + b"\r\n")
    responses = []
    while not (response := read_response(wire))[0].startswith(b"t "):
        responses.append(response)
    return responses, response[0]


def append(wire: Wire, message: bytes, *, marker: bytes = b"") -> None:
    wire.send(b"a1 APPEND INBOX " + marker + b"{%d+}\r\n" % len(message) + message + b"\r\n")
    assert wire.line().startswith(b"a1 OK [APPENDUID ")


def selected(wire: Wire, *messages: bytes) -> None:
    for message in messages:
        append(wire, message)
    wire.send(b"s1 SELECT INBOX\r\n")
    assert wire.until(b"s1")[-1].startswith(b"s1 OK [READ-WRITE]")


async def test_decoded_parts_literal_and_literal8(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            selected(wire, MESSAGE)
            command = b"FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[4.1])"
            responses, done = fetch(wire, command)
            assert done == b"t OK Fetch completed"
            [(text, literals)] = responses
            # Quoted-printable decoded, no NUL: a literal. Base64 with NUL: a literal8.
            assert text == (
                b"* 1 FETCH (BINARY[1] {%d}<1> BINARY[2] ~{%d}<2> BINARY[4.1] {10}<3>)"
                % (len(TEXT), len(SMALL))
            )
            assert literals == [TEXT, SMALL, b"inner body"]
            responses, _ = fetch(wire, b"FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[4.1])")
            assert responses[0][0] == (
                b"* 1 FETCH (BINARY.SIZE[1] %d BINARY.SIZE[2] %d BINARY.SIZE[4.1] 10)"
                % (len(TEXT), len(SMALL))
            )
            # PEEK: the message is still unseen.
            responses, _ = fetch(wire, b"FETCH 1 FLAGS")
            assert responses[0][0] == b"* 1 FETCH (FLAGS (\\Recent))"

    await asyncio.to_thread(conversation)


async def test_large_parts_are_streamed_and_sized(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            selected(wire, MESSAGE)
            responses, done = fetch(wire, b"UID FETCH 1 (BINARY.SIZE[5] BINARY.PEEK[5])")
            assert done == b"t OK Fetch completed"
            [(text, literals)] = responses
            assert text == b"* 1 FETCH (UID 1 BINARY.SIZE[5] %d BINARY[5] ~{%d}<1>)" % (
                len(LARGE),
                len(LARGE),
            )
            assert literals == [LARGE]
            responses, _ = fetch(wire, b"FETCH 1 (BINARY.PEEK[6] BINARY.SIZE[6])")
            [(text, literals)] = responses
            assert text == b"* 1 FETCH (BINARY[6] {%d}<1> BINARY.SIZE[6] %d)" % (
                len(LARGE_TEXT),
                len(LARGE_TEXT),
            )
            assert literals == [LARGE_TEXT]
            still_usable(wire)

    await asyncio.to_thread(conversation)


@pytest.mark.parametrize(
    ("section", "origin", "count", "expected"),
    [
        (b"2", 3, 6, SMALL[3:9]),  # inline, the partial of the decoded octets
        (b"2", 4, 100, SMALL[4:]),
        (b"2", 100, 5, b""),
        (b"1", 0, 5, TEXT[:5]),
        (b"5", 50_000, 30_000, LARGE[50_000:80_000]),  # streamed
        (b"5", 255, 2, LARGE[255:257]),
        (b"5", 102_000, 30_000, LARGE[102_000:]),
    ],
)
async def test_partial_applies_to_decoded_data(
    imap: ImapTarget, section: bytes, origin: int, count: int, expected: bytes
) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            selected(wire, MESSAGE)
            command = b"FETCH 1 BINARY.PEEK[%s]<%d.%d>" % (section, origin, count)
            responses, done = fetch(wire, command)
            assert done == b"t OK Fetch completed"
            [(text, literals)] = responses
            kind = b"~" if b"\x00" in expected else b""
            name = b"BINARY[%s]<%d>" % (section, origin)
            assert text == b"* 1 FETCH (" + name + b" " + kind + b"{%d}<1>)" % len(expected)
            assert literals == [expected]

    await asyncio.to_thread(conversation)


async def test_binary_sets_seen_and_peek_does_not(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            selected(wire, MESSAGE, MESSAGE)
            responses, _ = fetch(wire, b"FETCH 1 BINARY[2]")
            assert responses[0][0] == b"* 1 FETCH (BINARY[2] ~{%d}<1> FLAGS (\\Seen \\Recent))" % (
                len(SMALL)
            )
            responses, _ = fetch(wire, b"FETCH 2 (BINARY.SIZE[2] BINARY.PEEK[1])")
            assert b"FLAGS" not in responses[0][0]
            responses, _ = fetch(wire, b"FETCH 1:2 FLAGS")
            assert [text for text, _ in responses] == [
                b"* 1 FETCH (FLAGS (\\Seen \\Recent))",
                b"* 2 FETCH (FLAGS (\\Recent))",
            ]

    await asyncio.to_thread(conversation)


LEAF_ONLY = b"t NO BINARY is only for leaf body parts"


@pytest.mark.parametrize(
    ("item", "reply", "second"),
    [
        # The other message is still answered (its part 3 or 4 does not exist).
        (b"BINARY.PEEK[3]", b"t NO [UNKNOWN-CTE] ", b"BINARY[3] {0}<1>"),  # x-uuencode
        (b"BINARY.SIZE[3]", b"t NO [UNKNOWN-CTE] ", b"BINARY.SIZE[3] 0"),
        (b"BINARY.SIZE[4]", LEAF_ONLY, b"BINARY.SIZE[4] 0"),  # message/rfc822
        (b"BINARY.PEEK[]", LEAF_ONLY, None),  # the message itself, in both
        (b"(BINARY.PEEK[1] BINARY.PEEK[])", LEAF_ONLY, None),
    ],
)
async def test_refused_parts_fail_the_fetch(
    imap: ImapTarget, item: bytes, reply: bytes, second: bytes | None
) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            plain = b"Subject: plain\r\n\r\nJust text.\r\n"
            selected(wire, MESSAGE, plain)
            responses, done = fetch(wire, b"UID FETCH 1:2 " + item)
            assert done.startswith(reply)
            answered = [text for text, _ in responses]
            assert answered == ([] if second is None else [b"* 2 FETCH (UID 2 " + second + b")"])
            # Nothing was half sent: the session goes on, and PEEK set no flag.
            responses, _ = fetch(wire, b"FETCH 1 FLAGS")
            assert responses[0][0] == b"* 1 FETCH (FLAGS (\\Recent))"

    await asyncio.to_thread(conversation)


async def test_missing_part_is_empty(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            selected(wire, MESSAGE)
            responses, done = fetch(wire, b"FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[2.1])")
            assert done == b"t OK Fetch completed"
            assert responses == [(b"* 1 FETCH (BINARY[9] {0}<1> BINARY.SIZE[2.1] 0)", [b""])]

    await asyncio.to_thread(conversation)


BINARY_MESSAGE = (
    b"From: ann@example.org\r\nSubject: raw\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n\r\n" + bytes(range(256)) * 3
)


@pytest.mark.parametrize("sync", [True, False])
async def test_append_literal8_round_trip(imap: ImapTarget, sync: bool) -> None:
    """RFC 3516 section 4.4: a message with NUL comes in as ``~{n}`` and is kept as is."""
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            head = b"a1 APPEND INBOX (\\Flagged) ~{%d%s}\r\n" % (
                len(BINARY_MESSAGE),
                b"" if sync else b"+",
            )
            wire.send(head)
            if sync:
                assert wire.line().startswith(b"+ ")
            wire.send(BINARY_MESSAGE + b"\r\n")
            assert re.fullmatch(rb"a1 OK \[APPENDUID [0-9]+ 1\] Append completed", wire.line())
            wire.send(b"s1 SELECT INBOX\r\n")
            wire.until(b"s1")
            body_start = BINARY_MESSAGE.index(b"\r\n\r\n") + 4
            content = BINARY_MESSAGE[body_start:]
            command = b"FETCH 1 (RFC822.SIZE BINARY.SIZE[1] BINARY.PEEK[1] FLAGS)"
            responses, done = fetch(wire, command)
            assert done == b"t OK Fetch completed"
            assert responses == [
                (
                    b"* 1 FETCH (RFC822.SIZE %d BINARY.SIZE[1] %d BINARY[1] ~{%d}<1>"
                    b" FLAGS (\\Flagged \\Recent))"
                    % (len(BINARY_MESSAGE), len(content), len(content)),
                    [content],
                )
            ]
            # BODY[] cannot carry NUL (RFC 3501 section 4.3.1): the same octet count.
            responses, _ = fetch(wire, b"FETCH 1 BODY.PEEK[]")
            assert responses[0][1] == [BINARY_MESSAGE.replace(b"\x00", b"\x80")]

    await asyncio.to_thread(conversation)


async def test_multiappend_with_literal8(imap: ImapTarget) -> None:
    user = await imap.new_user()
    text = b"Subject: text\r\n\r\nplain\r\n"

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"a1 APPEND INBOX {%d+}\r\n" % len(text) + text)
            wire.send(b" ~{%d+}\r\n" % len(BINARY_MESSAGE) + BINARY_MESSAGE + b"\r\n")
            assert re.fullmatch(rb"a1 OK \[APPENDUID [0-9]+ 1:2\] Append completed", wire.line())
            wire.send(b"s1 SELECT INBOX\r\n")
            wire.until(b"s1")
            responses, _ = fetch(wire, b"FETCH 1:2 RFC822.SIZE")
            assert [text for text, _ in responses] == [
                b"* 1 FETCH (RFC822.SIZE %d)" % len(text),
                b"* 2 FETCH (RFC822.SIZE %d)" % len(BINARY_MESSAGE),
            ]

    await asyncio.to_thread(conversation)


async def test_literal8_over_appendlimit_is_toobig(imap_factory: ImapFactory) -> None:
    imap = await imap_factory(max_append_size="64K")
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"a1 APPEND INBOX ~{%d}\r\n" % (64 * 1024 + 1))
            assert wire.line().startswith(b"a1 NO [TOOBIG] ")
            still_usable(wire)
            wire.send(b"a2 APPEND INBOX ~{%d+}\r\n" % (1 << 30))
            assert wire.line().startswith(b"* BYE ")
            assert wire.closed()

    await asyncio.to_thread(conversation)


async def test_literal8_outside_append_is_bad_and_not_read(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"c1 CREATE ~{5}\r\n")
            assert wire.line().startswith(b"c1 BAD ")
            smuggled = b"x1 DELETE INBOX"
            wire.send(b"c2 CREATE ~{%d+}\r\n" % len(smuggled) + smuggled + b"\r\n")
            assert wire.line().startswith(b"c2 BAD ")
            still_usable(wire)

    await asyncio.to_thread(conversation)


async def test_nul_without_literal8_is_still_refused(imap: ImapTarget) -> None:
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            wire.send(b"a1 APPEND INBOX {%d+}\r\n" % len(BINARY_MESSAGE) + BINARY_MESSAGE + b"\r\n")
            assert wire.line().startswith(b"a1 BAD ")
            still_usable(wire)

    await asyncio.to_thread(conversation)
