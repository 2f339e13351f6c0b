"""Mailboxes, messages and deleted messages through the HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.integration.api.conftest import (
    MAX_APPEND,
    ApiNode,
    mailbox_path,
    messages_path,
    user_path,
)
from tests.integration.api.test_accounts import all_items, error

MESSAGE = (
    b"From: =?utf-8?q?Bj=C3=B6rn?= <bjorn@example.org>\r\n"
    b"To: Alice <alice@example.org>, carol@example.org\r\n"
    b"Subject: =?utf-8?q?Caf=C3=A9_on_Friday?=\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n"
    b"Message-ID: <cafe@example.org>\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
)
RFC822 = {"Content-Type": "message/rfc822"}


def numbered(n: int) -> bytes:
    return f"From: a@example.org\r\nSubject: number {n}\r\n\r\nbody {n}\r\n".encode()


# -- mailboxes -----------------------------------------------------------------------------


def test_mailboxes_create_rename_delete(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    boxes = f"{user_path(address)}/mailboxes"
    listed = api.get(boxes).json()
    assert [m["name"] for m in listed["items"]] == [
        "Archive",
        "Drafts",
        "INBOX",
        "Junk",
        "Sent",
        "Trash",
    ]
    assert listed["next_cursor"] is None
    sent = next(m for m in listed["items"] if m["name"] == "Sent")
    assert sent["special_use"] == "\\Sent"
    assert (sent["messages"], sent["unseen"], sent["size"]) == (0, 0, 0)

    created = api.post(boxes, json={"name": "Archive/2024"})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Archive/2024"
    assert api.post(boxes, json={"name": "Projects/Alpha"}).status_code == 201
    names = [m["name"] for m in all_items(api, boxes, limit=3)]
    assert {"Archive/2024", "Projects", "Projects/Alpha"} <= set(names)
    assert names == sorted(names)

    error(api.post(boxes, json={"name": "Archive/2024"}), 409, "mailbox_exists")
    error(api.post(boxes, json={"name": "bad*name"}), 422, "invalid_mailbox_name")
    error(api.post(boxes, json={"name": "a//b"}), 422, "invalid_mailbox_name")

    # "/" in a name: percent-encoded, or as it is.
    renamed = api.patch(mailbox_path(address, "Projects/Alpha"), json={"name": "Projects/Beta"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Projects/Beta"
    renamed = api.patch(f"{boxes}/Projects/Beta", json={"name": "Projects/Gamma"})
    assert renamed.json()["name"] == "Projects/Gamma"
    error(api.patch(f"{boxes}/Nope", json={"name": "X"}), 404, "mailbox_not_found")
    error(api.patch(f"{boxes}/Projects", json={"name": "Archive"}), 409, "mailbox_exists")
    error(api.patch(f"{boxes}/Projects", json={"name": "Projects/Sub"}), 422)

    assert api.delete(f"{boxes}/Projects/Gamma").status_code == 204
    assert api.delete(mailbox_path(address, "Archive/2024")).status_code == 204
    error(api.delete(f"{boxes}/Projects/Gamma"), 404, "mailbox_not_found")
    error(api.delete(f"{boxes}/INBOX"), 409, "not_allowed")
    error(api.get(f"{user_path('nobody@' + address.split('@')[1])}/mailboxes"), 404)


def test_mailbox_counts_and_sizes(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    first = api_node.import_message(address, numbered(1))
    api_node.import_message(address, numbered(2), flags=["\\Seen"])
    inbox = next(
        m
        for m in api.get(f"{user_path(address)}/mailboxes").json()["items"]
        if m["name"] == "INBOX"
    )
    assert (inbox["messages"], inbox["unseen"]) == (2, 1)
    assert inbox["size"] == len(numbered(1)) + len(numbered(2))
    assert inbox["uidnext"] == first + 2


# -- messages -------------------------------------------------------------------------------


def test_import_list_fetch_flag_and_delete(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    path = messages_path(address)
    response = api.post(
        path,
        content=MESSAGE,
        headers=RFC822,
        params={"flags": ["\\flagged", "$Work"], "internal_date": "2026-11-01T08:30:00+01:00"},
    )
    assert response.status_code == 201, response.text
    appended = response.json()
    assert appended["mailbox"] == "INBOX"
    uid = appended["uid"]

    listed = api.get(path).json()
    assert listed == {
        "items": [
            {
                "uid": uid,
                "flags": ["\\Flagged", "$Work"],
                "size": len(MESSAGE),
                "internal_date": "2026-11-01T07:30:00Z",
                "from": "Björn <bjorn@example.org>",
                "subject": "Café on Friday",
            }
        ],
        "next_cursor": None,
    }
    detail = api.get(f"{path}/{uid}").json()
    assert detail["to"] == ["Alice <alice@example.org>", "carol@example.org"]
    assert detail["cc"] == []
    assert detail["message_id"] == "<cafe@example.org>"
    assert detail["date"] == "Tue, 24 Nov 2026 10:00:00 +0100"

    raw = api.get(f"{path}/{uid}/raw")
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "message/rfc822"
    assert raw.headers["content-length"] == str(len(MESSAGE))
    assert raw.content == MESSAGE

    flagged = api.patch(f"{path}/{uid}", json={"flags": ["\\Seen", "\\ANSWERED", "todo"]})
    assert flagged.status_code == 200
    assert flagged.json()["flags"] == ["\\Seen", "\\Answered", "todo"]
    assert api.patch(f"{path}/{uid}", json={"flags": []}).json()["flags"] == []
    error(api.patch(f"{path}/{uid}", json={"flags": ["\\Recent"]}), 422, "invalid_flag")
    error(api.patch(f"{path}/{uid}", json={"flags": ["two words"]}), 422, "invalid_flag")
    error(api.patch(f"{path}/{uid}", json={"flags": "\\Seen"}), 422, "invalid_request")

    assert api.delete(f"{path}/{uid}").status_code == 204
    for response in (
        api.get(f"{path}/{uid}"),
        api.get(f"{path}/{uid}/raw"),
        api.patch(f"{path}/{uid}", json={"flags": []}),
        api.delete(f"{path}/{uid}"),
    ):
        error(response, 404, "message_not_found")
    assert api.get(path).json()["items"] == []


def test_import_errors(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user(quota=300)
    path = messages_path(address)

    error(api.post(messages_path(address, "Nope"), content=MESSAGE, headers=RFC822), 404)
    error(api.get(messages_path(address, "Nope")), 404, "mailbox_not_found")
    error(api.post(path, content=b"", headers=RFC822), 422, "invalid_value")
    error(api.post(path, content=b"x" * (MAX_APPEND + 1), headers=RFC822), 413, "too_large")

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_APPEND // 4096 + 2):
            yield b"x" * 4096

    error(api.post(path, content=chunks(), headers=RFC822), 413, "too_large")
    error(api.post(path, content=MESSAGE, headers=RFC822, params={"flags": "a(b"}), 422)
    error(
        api.post(path, content=MESSAGE, headers=RFC822, params={"internal_date": "yesterday"}),
        422,
        "invalid_request",
    )
    error(
        api.post(path, content=MESSAGE, headers=RFC822, params={"internal_date": "0001-01-01"}),
        422,
        "invalid_date",
    )
    big = b"Subject: big\r\n\r\n" + b"y" * 400
    error(api.post(path, content=big, headers=RFC822), 409, "over_quota")
    error(api.post(messages_path("nobody@example.invalid"), content=MESSAGE, headers=RFC822), 404)
    # Nothing of the refused imports is left.
    assert api.get(f"{user_path(address)}/usage").json()["messages"] == 0


def test_import_of_text_or_json_as_mail_is_refused_with_415(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    path = messages_path(address)
    for content_type in (
        "text/plain",
        "application/json",
        "application/x-www-form-urlencoded",  # curl's default for --data-binary
        "message/rfc822x",
        "message/partial",
    ):
        response = api.post(path, content=MESSAGE, headers={"Content-Type": content_type})
        error(response, 415, "unsupported_media_type")
        assert "message/rfc822" in response.json()["detail"]
    error(api.post(path, content=MESSAGE), 415, "unsupported_media_type")  # none given
    assert api.get(f"{user_path(address)}/usage").json()["messages"] == 0
    # The media type is case-insensitive and may carry parameters (RFC 9110 8.3.1).
    for content_type in ("Message/RFC822", "message/rfc822; charset=utf-8"):
        response = api.post(path, content=MESSAGE, headers={"Content-Type": content_type})
        assert response.status_code == 201, response.text
    assert api.get(f"{user_path(address)}/usage").json()["messages"] == 2
    document = api_node.client("").get("/openapi.json").json()
    declared = document["paths"]["/api/v1/users/{address}/mailboxes/{name}/messages"]["post"]
    assert "415" in declared["responses"]


def test_messages_page_by_uid(api_node: ApiNode) -> None:
    address = api_node.new_user()
    uids = [api_node.import_message(address, numbered(n), mailbox="Archive") for n in range(5)]
    items = all_items(api_node.api, messages_path(address, "Archive"), limit=2)
    assert [m["uid"] for m in items] == uids
    assert [m["subject"] for m in items] == [f"number {n}" for n in range(5)]


def test_messages_in_a_mailbox_with_slashes(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    assert (
        api.post(f"{user_path(address)}/mailboxes", json={"name": "A/messages"}).status_code == 201
    )
    uid = api_node.import_message(address, numbered(1), mailbox="A/messages")
    for path in (
        messages_path(address, "A/messages"),
        f"{user_path(address)}/mailboxes/A/messages/messages",
    ):
        assert [m["uid"] for m in api.get(path).json()["items"]] == [uid]
        assert api.get(f"{path}/{uid}/raw").content == numbered(1)
    # A name that only looks like a message path is still a mailbox.
    renamed = api.patch(f"{user_path(address)}/mailboxes/A/messages", json={"name": "B"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["messages"] == 1


@pytest.mark.parametrize("encoded", [True, False])
def test_unicode_mailbox_names(api_node: ApiNode, encoded: bool) -> None:
    api = api_node.api
    address = api_node.new_user()
    name = "Réunions/2024 été"
    assert api.post(f"{user_path(address)}/mailboxes", json={"name": name}).status_code == 201
    path = (
        messages_path(address, name)
        if encoded
        else (f"{user_path(address)}/mailboxes/{quote(name, safe='/')}/messages")
    )
    response = api.post(path, content=numbered(1), headers=RFC822)
    assert response.status_code == 201, response.text
    assert response.json()["mailbox"] == name


# -- deleted messages ----------------------------------------------------------------------------


def test_deleted_messages_are_listed_and_restored(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    uids = [api_node.import_message(address, numbered(n)) for n in range(3)]
    for uid in uids:
        assert api.delete(f"{messages_path(address)}/{uid}").status_code == 204
    deleted = all_items(api, f"{user_path(address)}/deleted", limit=2)
    assert [(d["uid"], d["mailbox"], d["subject"]) for d in deleted] == [
        (uid, "INBOX", f"number {n}") for n, uid in enumerate(uids)
    ]
    assert set(deleted[0]) == {
        "id",
        "mailbox",
        "uid",
        "size",
        "internal_date",
        "deleted_at",
        "from",
        "subject",
    }
    usage = api.get(f"{user_path(address)}/usage").json()
    assert usage["messages"] == 0

    target = deleted[1]
    restored = api.post(f"{user_path(address)}/deleted/{target['id']}/restore")
    assert restored.status_code == 200, restored.text
    body = restored.json()
    assert body["mailbox"] == "INBOX"
    assert body["id"] == target["id"]
    assert body["uid"] > uids[-1]  # a new UID: UIDs are never reused
    fetched = api.get(f"{messages_path(address)}/{body['uid']}/raw")
    assert fetched.content == numbered(1)
    remaining = api.get(f"{user_path(address)}/deleted").json()["items"]
    assert [d["id"] for d in remaining] == [deleted[0]["id"], deleted[2]["id"]]
    error(api.post(f"{user_path(address)}/deleted/{target['id']}/restore"), 404, "not_found")
    error(api.get(f"{user_path(address)}/deleted", params={"cursor": "x"}), 422, "invalid_cursor")


def test_restore_needs_the_mailbox_and_the_quota(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    boxes = f"{user_path(address)}/mailboxes"
    assert api.post(boxes, json={"name": "Gone"}).status_code == 201
    uid = api_node.import_message(address, numbered(1), mailbox="Gone")
    # Not the newest mailbox when it goes: SQLite would hand its id to the next
    # mailbox created, whose UID 1 then collides with the deleted message's row
    # (a mailstore bug, reported; not the API's to work around).
    assert api.post(boxes, json={"name": "Later"}).status_code == 201
    kept = api_node.import_message(address, numbered(2))
    assert api.delete(f"{boxes}/Gone").status_code == 204
    assert api.delete(f"{messages_path(address)}/{kept}").status_code == 204
    items = api.get(f"{user_path(address)}/deleted").json()["items"]
    gone, inbox = (next(d for d in items if d["subject"] == f"number {n}") for n in (1, 2))
    assert (gone["uid"], gone["mailbox"]) == (uid, None)
    assert (inbox["uid"], inbox["mailbox"]) == (kept, "INBOX")
    restore = f"{user_path(address)}/deleted/{{}}/restore"
    error(api.post(restore.format(gone["id"])), 404, "mailbox_not_found")

    assert api.patch(user_path(address), json={"quota": 1}).status_code == 200
    error(api.post(restore.format(inbox["id"])), 409, "over_quota")
    error(api.post(f"{user_path(address)}/deleted/999999999/restore"), 404)
    error(api.post(f"{user_path(address)}/deleted/0/restore"), 422)
