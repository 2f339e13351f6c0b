"""Domains, users, aliases and tokens through the HTTP API, and the token CLI."""

from __future__ import annotations

import imaplib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lightmail.cli import EXIT_REFUSED, main
from tests.integration.api.conftest import PASSWORD, ApiNode, user_path

JSON = {"Content-Type": "application/json"}


def error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The error body of a response that must have failed with ``status``."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if code is not None:
        assert body["error"] == code, body
    return body


def all_items(client: httpx.Client, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the list never ended")


# -- domains -------------------------------------------------------------------------


def test_domains_add_list_page_and_delete(api_node: ApiNode) -> None:
    api = api_node.api
    names = sorted(f"d{uuid.uuid4().hex[:10]}.example" for _ in range(3))
    for name in names:
        response = api.post("/api/v1/domains", json={"name": name.upper()})
        assert response.status_code == 201
        assert response.json() == {"name": name, "users": 0}
    listed = all_items(api, "/api/v1/domains", limit=2)
    assert [d["name"] for d in listed] == sorted(d["name"] for d in listed)
    assert {"name": names[0], "users": 0} in listed
    assert set(names) <= {d["name"] for d in listed}

    error(api.post("/api/v1/domains", json={"name": names[0]}), 409, "already_exists")
    error(api.post("/api/v1/domains", json={"name": "no dots"}), 422, "invalid_value")
    error(api.post("/api/v1/domains", json={}), 422, "invalid_request")
    error(api.post("/api/v1/domains", json={"name": "a.example", "x": 1}), 422, "invalid_request")
    error(
        api.post(
            "/api/v1/domains", content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        422,
    )
    big = b'{"name": "' + b"a" * (1 << 20) + b'"}'
    error(api.post("/api/v1/domains", content=big, headers=JSON), 413, "too_large")

    def streamed() -> Iterator[bytes]:
        yield big

    error(api.post("/api/v1/domains", content=streamed(), headers=JSON), 422, "invalid_request")
    error(api.get("/api/v1/domains", params={"cursor": "garbage!"}), 422, "invalid_cursor")
    error(api.get("/api/v1/domains", params={"limit": 0}), 422, "invalid_request")

    assert api.delete(f"/api/v1/domains/{names[0]}").status_code == 204
    error(api.delete(f"/api/v1/domains/{names[0]}"), 404, "not_found")
    error(api.delete("/api/v1/domains/-bad-"), 422, "invalid_value")


def test_domain_with_users_needs_force(api_node: ApiNode) -> None:
    api = api_node.api
    domain = api_node.new_domain()
    address = api_node.new_user(domain)
    assert (
        api.post(
            "/api/v1/aliases", json={"address": f"*@{domain}", "targets": [address]}
        ).status_code
        == 201
    )
    body = error(api.delete(f"/api/v1/domains/{domain}"), 409, "domain_not_empty")
    assert "1 user" in body["detail"]
    listed = api.get("/api/v1/domains", params={"limit": 1000}).json()["items"]
    assert {"name": domain, "users": 1} in listed

    assert api.delete(f"/api/v1/domains/{domain}", params={"force": "true"}).status_code == 204
    error(api.get(user_path(address)), 404)
    assert api.get("/api/v1/aliases", params={"domain": domain}).json()["items"] == []


# -- users ------------------------------------------------------------------------------


def test_user_lifecycle(api_node: ApiNode) -> None:
    api = api_node.api
    domain = api_node.new_domain()
    address = f"Alice.{uuid.uuid4().hex[:6]}@{domain.upper()}"
    response = api.post(
        "/api/v1/users", json={"address": address, "password": PASSWORD, "quota": 1 << 20}
    )
    assert response.status_code == 201, response.text
    user = response.json()
    normalized = address.lower()
    assert user["address"] == normalized
    assert (user["quota"], user["enabled"]) == (1 << 20, True)
    assert set(user) == {"address", "quota", "enabled", "created_at"}

    assert api.get(user_path(address)).json() == user  # any case finds the user
    assert api.get("/api/v1/users", params={"domain": domain}).json() == {
        "items": [user],
        "next_cursor": None,
    }
    usage = api.get(f"{user_path(normalized)}/usage").json()
    assert usage == {
        "address": normalized,
        "bytes": 0,
        "messages": 0,
        "quota": 1 << 20,
        "available": 1 << 20,
    }

    changed = api.patch(user_path(normalized), json={"quota": None, "enabled": False}).json()
    assert (changed["quota"], changed["enabled"]) == (None, False)
    with api_node.imap() as client, pytest.raises(imaplib.IMAP4.error):
        client.login(normalized, PASSWORD)
    changed = api.patch(user_path(normalized), json={"password": "n3w-secret", "enabled": True})
    assert changed.json()["enabled"] is True
    with api_node.imap(normalized, "n3w-secret") as client:
        assert client.select("INBOX")[0] == "OK"
    assert api.patch(user_path(normalized), json={}).json()["quota"] is None

    assert api.delete(user_path(normalized)).status_code == 204
    error(api.get(user_path(normalized)), 404, "not_found")
    error(api.delete(user_path(normalized)), 404, "not_found")
    error(api.patch(user_path(normalized), json={"quota": 5}), 404, "not_found")
    error(api.get(f"{user_path(normalized)}/usage"), 404, "not_found")


def test_user_errors(api_node: ApiNode) -> None:
    api = api_node.api
    domain = api_node.new_domain()
    address = api_node.new_user(domain)
    users = "/api/v1/users"
    error(api.post(users, json={"address": address, "password": "x"}), 409, "already_exists")
    error(api.post(users, json={"address": "bob@nowhere.example", "password": "x"}), 404)
    error(
        api.post(users, json={"address": "not an address", "password": "x"}), 422, "invalid_value"
    )
    error(api.post(users, json={"address": f"b@{domain}", "password": ""}), 422, "invalid_request")
    error(api.post(users, json={"address": f"b@{domain}", "password": "x", "quota": -1}), 422)
    error(api.post(users, json={"address": f"b@{domain}", "password": "x", "quota": "1G"}), 422)
    error(api.patch(user_path(address), json={"enabled": "maybe"}), 422, "invalid_request")
    error(api.patch(user_path(address), json={"password_hash": "x"}), 422, "invalid_request")
    error(api.get(user_path("not-an-address")), 422, "invalid_value")
    error(api.get(users, params={"domain": "nowhere.example"}), 404, "not_found")


def test_disabled_user_created_through_the_api(api_node: ApiNode) -> None:
    domain = api_node.new_domain()
    address = f"off@{domain}"
    response = api_node.api.post(
        "/api/v1/users", json={"address": address, "password": PASSWORD, "enabled": False}
    )
    assert response.status_code == 201
    assert response.json()["enabled"] is False


def test_users_page_in_order(api_node: ApiNode) -> None:
    domain = api_node.new_domain()
    created = sorted(api_node.new_user(domain) for _ in range(5))
    listed = all_items(api_node.api, "/api/v1/users", limit=2, domain=domain)
    assert [user["address"] for user in listed] == created


# -- aliases ----------------------------------------------------------------------------------


def test_aliases(api_node: ApiNode) -> None:
    api = api_node.api
    domain = api_node.new_domain()
    alice, bob = sorted(api_node.new_user(domain) for _ in range(2))
    team = f"team@{domain}"
    response = api.post("/api/v1/aliases", json={"address": team.upper(), "targets": [alice]})
    assert (response.status_code, response.json()) == (201, {"address": team, "targets": [alice]})
    response = api.post("/api/v1/aliases", json={"address": team, "targets": [bob]})
    assert response.json() == {"address": team, "targets": [alice, bob]}
    catch_all = api.post("/api/v1/aliases", json={"address": f"*@{domain}", "targets": [bob]})
    assert catch_all.json() == {"address": f"*@{domain}", "targets": [bob]}
    assert api.get("/api/v1/aliases", params={"domain": domain}).json()["items"] == [
        {"address": f"*@{domain}", "targets": [bob]},
        {"address": team, "targets": [alice, bob]},
    ]
    paged = all_items(api, "/api/v1/aliases", limit=1, domain=domain)
    assert [alias["address"] for alias in paged] == [f"*@{domain}", team]

    error(api.post("/api/v1/aliases", json={"address": team, "targets": []}), 422)
    error(
        api.post("/api/v1/aliases", json={"address": team, "targets": [f"nobody@{domain}"]}),
        404,
        "not_found",
    )
    error(
        api.post("/api/v1/aliases", json={"address": alice, "targets": [bob]}),
        409,
        "already_exists",
    )
    error(
        api.post("/api/v1/aliases", json={"address": "x@nowhere.example", "targets": [bob]}),
        404,
    )

    assert api.delete(f"/api/v1/aliases/*@{domain}").status_code == 204
    assert api.delete(f"/api/v1/aliases/{team}").status_code == 204
    error(api.delete(f"/api/v1/aliases/{team}"), 404, "not_found")
    error(api.delete("/api/v1/aliases/nonsense"), 422, "invalid_value")
    assert api.get("/api/v1/aliases", params={"domain": domain}).json()["items"] == []


# -- tokens ------------------------------------------------------------------------------------


def test_tokens_through_the_api(api_node: ApiNode) -> None:
    api = api_node.api
    name = f"panel-{uuid.uuid4().hex[:6]}"
    response = api.post("/api/v1/tokens", json={"name": name})
    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"name", "created_at", "last_used_at", "token"}
    assert created["name"] == name
    assert created["last_used_at"] is None
    secret = created["token"]
    assert secret.startswith("lm_")

    own = api_node.client(secret)
    assert own.get("/api/v1/tokens").status_code == 200
    listed = {t["name"]: t for t in all_items(api, "/api/v1/tokens", limit=2)}
    assert listed[name]["last_used_at"] is not None
    assert set(listed[name]) == {"name", "created_at", "last_used_at"}
    assert secret not in api.get("/api/v1/tokens", params={"limit": 1000}).text

    error(api.post("/api/v1/tokens", json={"name": name}), 409, "already_exists")
    error(api.post("/api/v1/tokens", json={"name": "has space"}), 422, "invalid_request")
    assert api.delete(f"/api/v1/tokens/{name}").status_code == 204
    error(own.get("/api/v1/tokens"), 401, "unauthorized")
    error(api.delete(f"/api/v1/tokens/{name}"), 404, "not_found")


def test_token_cli(
    api_node: ApiNode,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """``lightmail token create`` prints the token alone on its last line, once."""
    api_node.use_for_cli(monkeypatch, tmp_path)
    name = f"cli-{uuid.uuid4().hex[:6]}"

    assert main(["token", "create", name]) == 0
    out = capsys.readouterr().out
    secret = out.splitlines()[-1]
    assert secret.startswith("lm_")
    assert " " not in secret
    assert out.count(secret) == 1
    assert api_node.client(secret).get("/api/v1/domains").status_code == 200

    assert main(["token", "list"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(name + "\t"))
    assert "last used 20" in line
    assert "lm_" not in out

    assert main(["token", "create", name]) == EXIT_REFUSED
    assert "already exists" in capsys.readouterr().err
    assert main(["token", "revoke", name]) == 0
    assert capsys.readouterr().out == f"revoked API token {name}\n"
    assert api_node.client(secret).get("/api/v1/domains").status_code == 401
    assert main(["token", "revoke", name]) == EXIT_REFUSED
    assert main(["token", "create", "bad name"]) == EXIT_REFUSED
