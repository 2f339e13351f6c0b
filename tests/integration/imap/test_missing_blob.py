"""A message whose blob is gone must not stop a FETCH of a range at that message.

The blob of a visible message should never be missing, but when it is (an
operator's mistake, a bug, a lost COMMIT before the fix of issue #19), the
other messages are still returned, the failure is reported with a tagged
``NO [SERVERBUG]`` (RFC 3501 section 6.4.5 lets a server answer the rest),
logged as an error with the mailbox, UID and key, and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from tests.integration.imap.conftest import PASSWORD, ImapTarget
from tests.support.metrics import Changes


def _message(number: int, size: int) -> bytes:
    header = f"From: a@example.org\r\nSubject: message {number}\r\n\r\n".encode()
    line = f"line of message {number} ".encode().ljust(78, b".") + b"\r\n"
    return header + line * (size // len(line) + 1)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.mark.parametrize("size", [2_000, 100_000], ids=["inline", "streamed"])
async def test_fetch_range_skips_a_message_whose_blob_is_missing(
    imap: ImapTarget, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    user = await imap.new_user()
    store = imap.backend.store
    messages = [_message(number, size) for number in (1, 2, 3)]
    results = [await store.append(user.id, "INBOX", _chunks(m)) for m in messages]
    inbox = await store.get_mailbox(user.id, "INBOX")
    infos = await store.fetch_infos(inbox, [r.uid for r in results])
    lost = infos[1]
    await imap.backend.blobs.delete_many([lost.object_key])
    changes = Changes()

    def conversation() -> tuple[str, list[bytes], dict[int, bytes], str]:
        with imap.client() as client:
            client.login(user.address, PASSWORD)
            client.select("INBOX")
            status, data = client.fetch("1:3", "(UID BODY.PEEK[])")
            bodies = {}
            for item in client.response("FETCH")[1] + data:
                if isinstance(item, tuple):
                    seq = int(item[0].split()[0])
                    bodies[seq] = item[1]
            texts = [d for d in data if isinstance(d, bytes)]
            noop, _ = client.noop()  # the session goes on
            return status, texts, bodies, noop

    with caplog.at_level(logging.ERROR, logger="lightmail.imap.session"):
        status, texts, bodies, noop = await asyncio.to_thread(conversation)
    assert status == "NO"
    assert texts
    assert texts[-1].startswith(b"[SERVERBUG]")
    assert bodies == {1: messages[0], 3: messages[2]}
    assert noop == "OK"
    assert changes("lightmail_blobs_missing_total") == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert f"UID {lost.uid} " in errors[0]
    assert "'INBOX'" in errors[0]
    assert lost.object_key in errors[0]
