"""The quarantine, the garbage collector, and the open system routes."""

from __future__ import annotations

import smtplib
from typing import Any

import httpx

from tests.integration.api.conftest import ApiNode, messages_path, user_path
from tests.integration.api.test_accounts import error
from tests.integration.api.test_mail import RFC822, numbered
from tests.support.clamd import EICAR, REPORTED_NAME
from tests.support.require import require

INFECTED = b"From: bad@example.org\r\nSubject: infected\r\n\r\n" + EICAR + b"\r\n"


def _require_clamd(api_node: ApiNode) -> None:
    require("clamd", api_node.clamd is not None, "install Debian's clamav-daemon")


def _deliver(api_node: ApiNode, recipient: str, message: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", api_node.lmtp_port, timeout=30) as lmtp:
        refused = lmtp.sendmail("sender@example.org", [recipient], message)
        assert refused == {}


def _quarantined_for(api: httpx.Client, address: str) -> list[dict[str, Any]]:
    items = api.get("/api/v1/quarantine", params={"limit": 1000}).json()["items"]
    return [item for item in items if address in item["recipients"]]


# -- quarantine ------------------------------------------------------------------------------


def test_quarantine_list_raw_release_and_delete(api_node: ApiNode) -> None:
    _require_clamd(api_node)
    api = api_node.api
    address = api_node.new_user()
    _deliver(api_node, address, INFECTED)
    _deliver(api_node, address, INFECTED)
    kept = _quarantined_for(api, address)
    assert len(kept) == 2
    first, second = kept
    assert first["virus"] == REPORTED_NAME
    assert first["sender"] == "sender@example.org"
    assert first["recipients"] == [address]
    assert set(first) == {"id", "sender", "recipients", "virus", "size", "created_at"}

    raw = api.get(f"/api/v1/quarantine/{first['id']}/raw")
    assert raw.status_code == 200
    assert raw.headers["content-type"] == "message/rfc822"
    assert raw.content.endswith(INFECTED)  # after the Return-Path and Received lines
    assert len(raw.content) == first["size"]

    released = api.post(f"/api/v1/quarantine/{first['id']}/release")
    assert released.status_code == 200, released.text
    assert released.json() == {"id": first["id"], "delivered_to": [address]}
    inbox = api.get(messages_path(address)).json()["items"]
    assert [m["subject"] for m in inbox] == ["infected"]

    assert api.delete(f"/api/v1/quarantine/{second['id']}").status_code == 204
    assert _quarantined_for(api, address) == []
    for item in (first, second):
        error(api.get(f"/api/v1/quarantine/{item['id']}/raw"), 404, "not_found")
        error(api.post(f"/api/v1/quarantine/{item['id']}/release"), 404, "not_found")
        error(api.delete(f"/api/v1/quarantine/{item['id']}"), 404, "not_found")
    error(api.get("/api/v1/quarantine/0/raw"), 422, "invalid_request")


def test_quarantine_pages(api_node: ApiNode) -> None:
    _require_clamd(api_node)
    api = api_node.api
    address = api_node.new_user()
    for _ in range(3):
        _deliver(api_node, address, INFECTED)
    ids: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/api/v1/quarantine", params=params).json()
        ids += [item["id"] for item in page["items"] if address in item["recipients"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(ids) == 3
    assert ids == sorted(ids)


def test_infected_import_is_refused(api_node: ApiNode) -> None:
    """Importing through the API is scanned like IMAP APPEND (scan_append = true)."""
    _require_clamd(api_node)
    api = api_node.api
    address = api_node.new_user()
    response = api.post(messages_path(address), content=INFECTED, headers=RFC822)
    body = error(response, 422, "rejected")
    assert "content policy" in body["detail"]
    assert api.get(messages_path(address)).json()["items"] == []
    assert api.post(messages_path(address), content=numbered(1), headers=RFC822).status_code == 201


# -- garbage collection -----------------------------------------------------------------------


def test_gc_status_and_run(api_node: ApiNode) -> None:
    api = api_node.api
    address = api_node.new_user()
    uid = api_node.import_message(address, numbered(1))
    before = api.get("/api/v1/gc").json()
    assert set(before) == {"last_run", "deleted_messages", "deleted_bytes", "due_messages"}
    assert api.delete(f"{messages_path(address)}/{uid}").status_code == 204
    after = api.get("/api/v1/gc").json()
    assert after["deleted_messages"] == before["deleted_messages"] + 1
    assert after["deleted_bytes"] == before["deleted_bytes"] + len(numbered(1))
    assert after["due_messages"] == before["due_messages"]  # retention is 7 days

    dry = api.post("/api/v1/gc/run", params={"dry_run": "true"})
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["dry_run"] is True
    assert report["error"] is None
    assert report["finished_at"] >= report["started_at"]
    report = api.post("/api/v1/gc/run").json()
    assert report["dry_run"] is False
    assert report["error"] is None
    last = api.get("/api/v1/gc").json()["last_run"]
    assert last is not None
    assert last["finished_at"] >= report["started_at"][:19]
    # Not due yet: the message is still restorable.
    assert len(api.get(f"{user_path(address)}/deleted").json()["items"]) == 1
    error(api.post("/api/v1/gc/run", params={"dry_run": "perhaps"}), 422, "invalid_request")


# -- system routes ---------------------------------------------------------------------------


def test_health_ready_and_metrics_are_open(api_node: ApiNode) -> None:
    anonymous = api_node.client("")
    health = anonymous.get("/health")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = anonymous.get("/ready")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "database": "ok", "blobs": "ok", "notifications": "live"},
    )
    metrics = anonymous.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE lightmail_" in metrics.text
    assert api_node.token not in metrics.text


def test_documents_and_unknown_routes(api_node: ApiNode) -> None:
    anonymous = api_node.client("")
    document = anonymous.get("/openapi.json")
    assert document.status_code == 200
    assert document.json()["info"]["title"] == "LightMail"
    assert "swagger" in anonymous.get("/docs").text.lower()
    error(anonymous.get("/nowhere"), 404, "not_found")
    error(anonymous.post("/health"), 405, "method_not_allowed")
    error(api_node.api.get("/api/v1/nowhere"), 404, "not_found")
    error(api_node.api.put("/api/v1/domains"), 405, "method_not_allowed")
