"""Every protected operation refuses missing, malformed, wrong and revoked tokens.

The operations are enumerated from the node's own OpenAPI document, and the
document is checked against the app's routes, so a new route is covered (or
fails here) without anyone remembering to add it.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any, cast

import httpx
from fastapi.routing import APIRoute, iter_route_contexts

from lightmail.api.app import create_app
from lightmail.api.deps import ApiContext
from lightmail.config import load_settings
from tests.integration.api.conftest import ApiNode, concrete, operations

# Open to load balancers and Prometheus (metrics_auth is off on the test node).
OPEN_OPERATIONS = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics")}
# Routes outside the document: the document itself and its browsable page.
DOCUMENT_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}


def _send(
    client: httpx.Client, method: str, path: str, operation: dict[str, Any]
) -> httpx.Response:
    content = operation.get("requestBody", {}).get("content", {})
    if "message/rfc822" in content:
        return client.request(
            method,
            concrete(path),
            content=b"Subject: x\r\n\r\nx\r\n",
            headers={"Content-Type": "message/rfc822"},
        )
    if "application/json" in content:
        return client.request(method, concrete(path), json={})
    return client.request(method, concrete(path))


def test_the_document_covers_every_route(document: dict[str, Any]) -> None:
    settings = load_settings(None, {})
    app = create_app(cast(ApiContext, _Settings(settings)))
    served = {(method, path) for method, path, _ in operations(document)}
    routes = set()
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            assert route.include_in_schema, route.path
            routes |= {(method, route.path_format) for method in route.methods or ()}
        else:
            assert route.path in DOCUMENT_ROUTES, route
    assert routes == served


def test_only_health_ready_and_metrics_are_open(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "token": {
            "type": "http",
            "scheme": "bearer",
            "description": schemes["token"]["description"],
        }
    }
    for method, path, operation in operations(document):
        if (method, path) in OPEN_OPERATIONS:
            assert "security" not in operation, path
            continue
        assert operation.get("security") == [{"token": []}], (method, path)
        assert path.startswith("/api/v1/")
        assert "401" in operation["responses"], (method, path)


def _malformed(token: str) -> list[dict[str, str]]:
    return [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer  ,"},
        {"Authorization": token},  # no scheme
        {"Authorization": f"Basic {token}"},
        {"Authorization": f"Token {token}"},
        {"Authorization": f"Bearer {token} extra"},
        {"Authorization": "Bearer " + "x" * 5000},
        {"X-Api-Token": token},
    ]


def test_every_protected_operation_refuses_bad_tokens(
    api_node: ApiNode, document: dict[str, Any]
) -> None:
    name = f"revoked-{uuid.uuid4().hex[:6]}"
    created = api_node.api.post("/api/v1/tokens", json={"name": name})
    revoked = created.json()["token"]
    assert api_node.api.delete(f"/api/v1/tokens/{name}").status_code == 204
    bad = [
        *_malformed(api_node.token),
        {"Authorization": f"Bearer lm_{secrets.token_urlsafe(32)}"},  # well-formed, unknown
        {"Authorization": f"Bearer {api_node.token[:-1]}"},  # one character short
        {"Authorization": f"Bearer {api_node.token.upper()}"},
        {"Authorization": f"Bearer {revoked}"},
    ]
    protected = [op for op in operations(document) if (op[0], op[1]) not in OPEN_OPERATIONS]
    assert len(protected) >= 30
    checked = 0
    for headers in bad:
        client = httpx.Client(base_url=api_node.base_url, headers=headers, timeout=30)
        with client:
            for method, path, operation in protected:
                response = _send(client, method, path, operation)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, path)
                body = response.json()
                assert body["error"] == "unauthorized"
                assert set(body) == {"error", "detail"}
                checked += 1
    assert checked == len(bad) * len(protected)


def test_a_good_token_opens_every_operation(api_node: ApiNode, document: dict[str, Any]) -> None:
    """With the node's token no operation answers 401 (nor 5xx)."""
    for method, path, operation in operations(document):
        if method == "DELETE" or path.endswith(("/run", "/release", "/restore")):
            continue  # nothing of the test data should go
        response = _send(api_node.api, method, path, operation)
        assert response.status_code != 401, (method, path)
        assert response.status_code < 500, (method, path, response.text)


class _Settings:
    """Enough of an ApiContext to build the app (no route runs)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.tokens = None
