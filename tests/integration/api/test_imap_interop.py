"""What the API does is what IMAP clients see, and the other way round."""

from __future__ import annotations

import imaplib
import re
import time

from tests.integration.api.conftest import PASSWORD, ApiNode, messages_path, user_path
from tests.integration.api.test_mail import MESSAGE

# Bare LFs, 8-bit text and a line with a lone CR: kept as they are, byte for byte.
ODD_MESSAGE = b"From: odd@example.org\nSubject: odd\n\n8-bit: \xc3\xa9\xff\r\nlone\rCR\n" + bytes(
    range(1, 9)
)


def test_user_created_through_the_api_logs_in_over_imap(api_node: ApiNode) -> None:
    domain = api_node.new_domain()
    address = f"newcomer@{domain}"
    response = api_node.api.post(
        "/api/v1/users", json={"address": address, "password": "open-Sesame-1"}
    )
    assert response.status_code == 201
    with api_node.imap() as client:
        assert client.login(address, "open-Sesame-1")[0] == "OK"
        typ, data = client.list()
        assert typ == "OK"
        assert any(
            b'"INBOX"' in line or b" INBOX" in line for line in data if isinstance(line, bytes)
        )


def test_imported_message_is_fetched_byte_identical_over_imap(api_node: ApiNode) -> None:
    address = api_node.new_user()
    uids = [api_node.import_message(address, body) for body in (MESSAGE, ODD_MESSAGE)]
    with api_node.imap(address) as client:
        client.select("INBOX", readonly=True)
        for uid, body in zip(uids, (MESSAGE, ODD_MESSAGE), strict=True):
            typ, data = client.uid("FETCH", str(uid), "(BODY.PEEK[])")
            assert typ == "OK", data
            first = data[0]
            assert isinstance(first, tuple)
            assert first[1] == body


def test_flag_set_over_imap_shows_in_the_api(api_node: ApiNode) -> None:
    address = api_node.new_user()
    uid = api_node.import_message(address, MESSAGE)
    with api_node.imap(address) as client:
        client.select("INBOX")
        typ, _ = client.uid("STORE", str(uid), "+FLAGS", r"(\Flagged $Label1)")
        assert typ == "OK"
    listed = api_node.api.get(messages_path(address)).json()["items"]
    assert listed[0]["uid"] == uid
    assert listed[0]["flags"] == ["\\Flagged", "$Label1"]


def test_api_changes_reach_an_open_imap_session(api_node: ApiNode) -> None:
    """The mailstore's events tell a selected IMAP session at once."""
    api = api_node.api
    address = api_node.new_user()
    first = api_node.import_message(address, MESSAGE)
    with api_node.imap(address) as client:
        client.select("INBOX")
        second = api_node.import_message(address, MESSAGE)
        assert _untagged(client, "EXISTS", rb"2$")
        path = f"{messages_path(address)}/{first}"
        assert api.patch(path, json={"flags": ["\\Seen"]}).status_code == 200
        assert _untagged(client, "FETCH", rb"1 \(.*FLAGS \(\\Seen[ )]")
        assert api.delete(path).status_code == 204
        assert _untagged(client, "EXPUNGE", rb"1$")
        assert client.uid("SEARCH", "ALL") == ("OK", [str(second).encode()])
        boxes = f"{user_path(address)}/mailboxes"
        assert api.post(boxes, json={"name": "Fresh"}).status_code == 201
        _typ, listed = client.list()
        assert any(b"Fresh" in line for line in listed if isinstance(line, bytes))


def _untagged(client: imaplib.IMAP4, name: str, pattern: bytes) -> bool:
    """NOOP until an untagged ``name`` response whose data matches ``pattern`` came."""
    seen: list[object] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        client.noop()
        _, data = client.response(name)
        seen += [item for item in data if item is not None]
        if any(isinstance(item, bytes) and re.match(pattern, item) for item in seen):
            return True
        time.sleep(0.05)
    raise AssertionError(f"no untagged {name} {pattern!r} (got {seen!r})")


def test_password_never_appears_in_answers(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    bodies = [
        api.get(user_path(address)).text,
        api.get("/api/v1/users", params={"domain": address.split("@")[1]}).text,
        api.patch(user_path(address), json={"password": "Another-pass-2"}).text,
    ]
    for body in bodies:
        assert PASSWORD not in body
        assert "Another-pass-2" not in body
        assert "$argon2" not in body
        assert "$2b$" not in body
        assert "hash" not in body
