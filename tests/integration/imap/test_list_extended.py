"""LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438) and
CREATE-SPECIAL-USE (RFC 6154) over a raw socket, on both backends.

The hierarchies are those of the RFCs' examples, built through the store; the
replies are compared line by line with what the RFCs show (names sorted, and
CHILDREN and special-use attributes always sent, which the RFCs allow).
"""

from __future__ import annotations

import asyncio

from lightmail.accounts.service import User
from tests.integration.imap.conftest import ImapTarget
from tests.integration.imap.test_commands import MESSAGE, deliver
from tests.integration.imap.test_hostile import Wire, connect, login
from tests.integration.imap.test_imapclient import connect as imapclient_connect


async def _user_with(imap: ImapTarget, mailboxes: list[str], subscribed: list[str]) -> User:
    """A user with ``mailboxes`` (besides the defaults) and exactly ``subscribed``."""
    user = await imap.new_user()
    store = imap.backend.store
    for name in await store.subscriptions(user.id):
        await store.unsubscribe(user.id, name)
    for name in mailboxes:
        await store.create_mailbox(user.id, name)
    for name in subscribed:
        await store.subscribe(user.id, name)
    return user


def _command(wire: Wire, line: bytes, tag: bytes = b"A") -> list[bytes]:
    """The untagged replies to ``line``, which must complete with OK."""
    wire.send(tag + b" " + line + b"\r\n")
    lines = wire.until(tag)
    assert lines[-1].startswith(tag + b" OK"), lines
    return lines[:-1]


async def test_subscribed_selection_recursivematch_and_childinfo(imap: ImapTarget) -> None:
    """RFC 5258 section 5, examples 2, 8 and 9."""
    user = await _user_with(
        imap,
        ["Fruit/Apple", "Fruit/Banana", "Tofu", "Vegetable/Broccoli", "Vegetable/Corn"],
        ["INBOX", "Fruit/Banana", "Fruit/Peach", "Vegetable", "Vegetable/Broccoli"],
    )
    await imap.backend.store.delete_mailbox(user.id, "Fruit")  # a hole above its children

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            # Example 2: the subscribed names, one that does not exist among them.
            assert _command(wire, b'LIST (SUBSCRIBED) "" "*"') == [
                b'* LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana',
                b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Fruit/Peach',
                b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
                b'* LIST (\\HasChildren \\Subscribed) "/" Vegetable',
                b'* LIST (\\HasNoChildren \\Subscribed) "/" Vegetable/Broccoli',
            ]
            # Example 8: "%" alone shows no unsubscribed level; RECURSIVEMATCH shows
            # those with a subscribed child below, in CHILDINFO.
            assert _command(wire, b'LIST (SUBSCRIBED) "" "%"') == [
                b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
                b'* LIST (\\HasChildren \\Subscribed) "/" Vegetable',
            ]
            assert _command(wire, b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == [
                b'* LIST (\\NonExistent \\HasChildren) "/" Fruit ("CHILDINFO" ("SUBSCRIBED"))',
                b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
                b'* LIST (\\HasChildren \\Subscribed) "/" Vegetable ("CHILDINFO" ("SUBSCRIBED"))',
            ]
            # Example 9: a level whose subscribed children are all shown is not
            # shown for them; one that is shown for itself still carries CHILDINFO.
            assert _command(wire, b'LIST (RECURSIVEMATCH SUBSCRIBED) "" "*a*"') == [
                b'* LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana',
                b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "/" Fruit/Peach',
                b'* LIST (\\HasChildren \\Subscribed) "/" Vegetable ("CHILDINFO" ("SUBSCRIBED"))',
                b'* LIST (\\HasNoChildren \\Subscribed) "/" Vegetable/Broccoli',
            ]
            # The SUBSCRIBED return option marks what is subscribed among all names,
            # and lists no name that does not exist (example 6).
            assert _command(wire, b'LIST "" "Fruit*" RETURN (SUBSCRIBED CHILDREN)') == [
                b'* LIST (\\NonExistent \\HasChildren) "/" Fruit',
                b'* LIST (\\HasNoChildren) "/" Fruit/Apple',
                b'* LIST (\\HasNoChildren \\Subscribed) "/" Fruit/Banana',
            ]
            # RECURSIVEMATCH needs SUBSCRIBED; an unknown option is BAD (section 3).
            for bad in (b'LIST (RECURSIVEMATCH) "" "%"', b'LIST "" "%" RETURN (FOO)'):
                wire.send(b"B " + bad + b"\r\n")
                assert wire.line().startswith(b"B BAD ")

    await asyncio.to_thread(conversation)


async def test_several_patterns_and_the_empty_one(imap: ImapTarget) -> None:
    """RFC 5258 example 7; an extended LIST ignores an empty pattern, a plain one
    answers it with the delimiter; a hole is \\NonExistent only to an extended LIST."""
    user = await _user_with(imap, ["Sent/March2004", "Sent/August2004", "a/b"], [])
    await imap.backend.store.delete_mailbox(user.id, "a")

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            assert _command(wire, b'LIST "" ("INBOX" "Drafts" "Sent/%" "inbox")') == [
                b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
                b'* LIST (\\HasNoChildren) "/" INBOX',
                b'* LIST (\\HasNoChildren) "/" Sent/August2004',
                b'* LIST (\\HasNoChildren) "/" Sent/March2004',
            ]
            assert _command(wire, b'LIST "" ("")') == []
            assert _command(wire, b'LIST "" ""') == [b'* LIST (\\Noselect) "/" ""']
            assert _command(wire, b'LIST "" "a"') == [b'* LIST (\\Noselect \\HasChildren) "/" a']
            assert _command(wire, b'LIST () "" "a"') == [
                b'* LIST (\\NonExistent \\HasChildren) "/" a'
            ]

    await asyncio.to_thread(conversation)


async def test_list_status_and_status_size(imap: ImapTarget) -> None:
    """RFC 5819 section 3 and RFC 8438 section 3: a STATUS after each selectable
    name that the LIST shows for itself, none after a hole; SIZE is the sum of
    the messages' RFC822.SIZE."""
    user = await _user_with(imap, ["foo", "bar/baz"], ["INBOX"])
    await imap.backend.store.delete_mailbox(user.id, "bar")
    for _ in range(2):
        await deliver(imap, user.id, user.address, MESSAGE)

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            inbox = _command(wire, b"STATUS INBOX (MESSAGES SIZE UIDNEXT)")
            assert inbox == [b"* STATUS INBOX (MESSAGES 2 SIZE %d UIDNEXT 3)" % (2 * len(MESSAGE))]
            fetched = _command(wire, b"EXAMINE INBOX") and _command(
                wire, b"FETCH 1:* (RFC822.SIZE)"
            )
            assert fetched == [
                b"* 1 FETCH (RFC822.SIZE %d)" % len(MESSAGE),
                b"* 2 FETCH (RFC822.SIZE %d)" % len(MESSAGE),
            ]
            lines = _command(wire, b'LIST "" "%" RETURN (STATUS (MESSAGES UNSEEN SIZE))')
            empty = b"(MESSAGES 0 UNSEEN 0 SIZE 0)"
            assert lines == [
                b'* LIST (\\HasNoChildren \\Archive) "/" Archive',
                b"* STATUS Archive " + empty,
                b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
                b"* STATUS Drafts " + empty,
                b'* LIST (\\HasNoChildren) "/" INBOX',
                b"* STATUS INBOX (MESSAGES 2 UNSEEN 2 SIZE %d)" % (2 * len(MESSAGE)),
                b'* LIST (\\HasNoChildren \\Junk) "/" Junk',
                b"* STATUS Junk " + empty,
                b'* LIST (\\HasNoChildren \\Sent) "/" Sent',
                b"* STATUS Sent " + empty,
                b'* LIST (\\HasNoChildren \\Trash) "/" Trash',
                b"* STATUS Trash " + empty,
                b'* LIST (\\NonExistent \\HasChildren) "/" bar',
                b'* LIST (\\HasNoChildren) "/" foo',
                b"* STATUS foo " + empty,
            ]
            # RFC 5819 example 2: a level shown only for its subscribed child gets no STATUS.
            lines = _command(
                wire, b'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (STATUS (MESSAGES))'
            )
            assert lines == [
                b'* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
                b"* STATUS INBOX (MESSAGES 2)",
            ]

    await asyncio.to_thread(conversation)


async def test_create_special_use_and_the_special_use_selection(imap: ImapTarget) -> None:
    """RFC 6154 sections 3, 5.2 and 5.3."""
    user = await _user_with(imap, ["ToDo"], [])

    def conversation() -> None:
        with connect(imap) as wire:
            login(wire, user)
            assert _command(wire, b"CREATE MySent (USE (\\sent))") == []
            for line, text in (
                (b"CREATE Everything (USE (\\All))", b"\\All is not supported"),
                (b"CREATE Both (USE (\\Drafts \\Sent))", b"A mailbox has at most one"),
                (b"CREATE Odd (USE (\\Whatever))", b"\\Whatever is not supported"),
            ):
                wire.send(b"C " + line + b"\r\n")
                reply = wire.line()
                assert reply.startswith(b"C NO [USEATTR] " + text), reply
            wire.send(b"D CREATE Other (FOO)\r\n")
            assert wire.line().startswith(b"D BAD ")
            assert _command(wire, b'LIST (SPECIAL-USE) "" "*"') == [
                b'* LIST (\\HasNoChildren \\Archive) "/" Archive',
                b'* LIST (\\HasNoChildren \\Drafts) "/" Drafts',
                b'* LIST (\\HasNoChildren \\Junk) "/" Junk',
                b'* LIST (\\HasNoChildren \\Sent) "/" MySent',
                b'* LIST (\\HasNoChildren \\Sent) "/" Sent',
                b'* LIST (\\HasNoChildren \\Trash) "/" Trash',
            ]
            listed = _command(wire, b'LIST "" "%" RETURN (SPECIAL-USE)')
            assert b'* LIST (\\HasNoChildren) "/" ToDo' in listed
            assert b'* LIST (\\HasNoChildren \\Sent) "/" MySent' in listed
            # Nothing was created by the refused commands.
            assert _command(wire, b'LIST "" "Everything"') == []
            assert _command(wire, b'LIST "" "Both"') == []

    await asyncio.to_thread(conversation)


async def test_imapclient_status_size_and_capabilities(imap: ImapTarget) -> None:
    """A client library: the capabilities, and STATUS with SIZE through folder_status."""
    user = await imap.new_user()
    await deliver(imap, user.id, user.address, MESSAGE)

    def conversation() -> None:
        with imapclient_connect(imap, user) as client:
            for capability in ("LIST-EXTENDED", "LIST-STATUS", "STATUS=SIZE", "CREATE-SPECIAL-USE"):
                assert client.has_capability(capability)
            status = client.folder_status("INBOX", ["MESSAGES", "SIZE"])
            assert status == {b"MESSAGES": 1, b"SIZE": len(MESSAGE)}

    await asyncio.to_thread(conversation)
