"""LIST, LSUB and CREATE with the mailbox names and patterns clients send (issue #13).

Raw IMAP over a socket, so the exact lines the server sends are checked, on
both backends. A new user starts with INBOX, Drafts, Sent, Trash, Junk and
Archive, all subscribed.
"""

from __future__ import annotations

import asyncio

from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_hostile import Wire, connect, login

DEFAULTS = {b"INBOX", b"Drafts", b"Sent", b"Trash", b"Junk", b"Archive"}


def command(wire: Wire, tag: bytes, line: bytes) -> tuple[list[bytes], bytes]:
    """Send ``tag line``; the untagged lines it gets and its tagged reply."""
    wire.send(tag + b" " + line + b"\r\n")
    lines = wire.until(tag)
    return lines[:-1], lines[-1]


def listed(wire: Wire, tag: bytes, line: bytes) -> dict[bytes, bytes]:
    """LIST or LSUB ``line``, which must answer OK: attributes by mailbox name."""
    untagged, tagged = command(wire, tag, line)
    assert tagged.startswith(tag + b" OK "), tagged
    kind = line.split(b" ", 1)[0]
    found: dict[bytes, bytes] = {}
    for response in untagged:
        prefix = b"* " + kind + b" ("
        assert response.startswith(prefix), response
        attributes, name = response[len(prefix) :].split(b') "/" ', 1)
        found[name] = attributes
    return found


async def test_lsub_star_returns_only_subscribed_names(imap: ImapTarget) -> None:
    """RFC 3501 section 6.3.9: only a "%" brings in an unsubscribed parent, as \\Noselect."""
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            assert command(wire, b"c1", b"CREATE sub1/child")[1].startswith(b"c1 OK")
            assert command(wire, b"c2", b"SUBSCRIBE sub1/child")[1].startswith(b"c2 OK")
            everything = listed(wire, b"l1", b'LSUB "" "*"')
            assert everything == {name: b"" for name in DEFAULTS | {b"sub1/child"}}
            assert listed(wire, b"l2", b'LSUB "" "sub1*"') == {b"sub1/child": b""}
            assert listed(wire, b"l3", b'LSUB "" sub1') == {}
            top = listed(wire, b"l4", b'LSUB "" "%"')
            assert top == {name: b"" for name in DEFAULTS} | {b"sub1": b"\\Noselect"}
            assert listed(wire, b"l5", b'LSUB "" "sub%"') == {b"sub1": b"\\Noselect"}
            assert listed(wire, b"l6", b'LSUB "" "sub1/%"') == {b"sub1/child": b""}
            # Once the parent is subscribed it is an ordinary LSUB line.
            assert command(wire, b"c3", b"SUBSCRIBE sub1")[1].startswith(b"c3 OK")
            assert listed(wire, b"l7", b'LSUB "" "sub1*"') == {b"sub1": b"", b"sub1/child": b""}
            assert listed(wire, b"l8", b'LSUB "" "sub%"') == {b"sub1": b""}

    await asyncio.to_thread(conversation)


async def test_create_with_a_trailing_hierarchy_separator(imap: ImapTarget) -> None:
    """RFC 3501 section 6.3.3: "foo/" declares names below foo; "foo" is what is created."""
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            assert command(wire, b"c1", b"CREATE foo/")[1].startswith(b"c1 OK [MAILBOXID (F")
            assert command(wire, b"c2", b"CREATE foo/bar/")[1].endswith(b")] Create completed")
            assert command(wire, b"c3", b'CREATE "Entw&APw-rfe/"')[1].startswith(b"c3 OK")
            found = listed(wire, b"l1", b'LIST "" "*"')
            assert found[b"foo"] == b"\\HasChildren"
            assert found[b"foo/bar"] == b"\\HasNoChildren"
            assert found[b"Entw&APw-rfe"] == b"\\HasNoChildren"
            assert not any(name.endswith(b"/") for name in found)
            assert command(wire, b"s1", b"SELECT foo/bar")[1].startswith(b"s1 OK")
            # The declaration names an existing mailbox: nothing new is created.
            again = command(wire, b"c4", b"CREATE foo/")[1]
            assert again.startswith(b"c4 NO [ALREADYEXISTS]"), again
            # One separator is dropped, no more: these still have an empty level.
            for tag, bad in ((b"c5", b"CREATE foo//"), (b"c6", b'CREATE "/"')):
                reply = command(wire, tag, bad)[1]
                assert reply.startswith(tag + b" NO [CANNOT] Invalid mailbox name"), reply

    await asyncio.to_thread(conversation)


async def test_list_and_lsub_patterns_that_are_not_modified_utf7(imap: ImapTarget) -> None:
    """RFC 3501 sections 6.3.8 and 5.1.3: a pattern is not a name; it only fails to match."""
    user = await imap.new_user()

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            for tag, name in ((b"c1", b'"Tom &- Jerry"'), (b"c2", b"Entw&APw-rfe")):
                assert command(wire, tag, b"CREATE " + name)[1].startswith(tag + b" OK")
                assert command(wire, tag, b"SUBSCRIBE " + name)[1].startswith(tag + b" OK")
            for kind in (b"LIST", b"LSUB"):
                assert listed(wire, b"b1", kind + b' "" "a&b"') == {}
                assert listed(wire, b"b2", kind + b' "" "&"') == {}
                assert listed(wire, b"b3", kind + b' "" "&AGE-*"') == {}  # non-canonical
                assert listed(wire, b"b4", kind + b' "a&" "*"') == {}
                assert listed(wire, b"b5", kind + b' "" {3+}\r\n&\xff*') == {}
                # Where the pattern is valid it still means what it says.
                assert set(listed(wire, b"b6", kind + b' "" "Tom &*"')) == {b'"Tom &- Jerry"'}
                assert set(listed(wire, b"b7", kind + b' "" "*&APw-*"')) == {b"Entw&APw-rfe"}
            # A name is still checked: CREATE refuses what LIST only fails to match.
            reply = command(wire, b"c3", b'CREATE "a&b"')[1]
            assert reply.startswith(b"c3 NO [CANNOT] Invalid mailbox name"), reply

    await asyncio.to_thread(conversation)
