"""Errors every operation documents, checked on every operation that documents them.

The operations come from the node's OpenAPI document (see test_auth.py), so
an operation added later is covered here without being named.
"""

from __future__ import annotations

from typing import Any

from tests.integration.api.conftest import MAX_APPEND, ApiNode, concrete, operations
from tests.integration.api.test_accounts import error

RFC822 = {"Content-Type": "message/rfc822"}


def _parameters(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {parameter["name"]: parameter for parameter in operation.get("parameters", [])}


def _invalid(path: str, operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL and body of a request the operation must refuse with 422."""
    parameters = _parameters(operation)
    url = concrete(path)
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return url, {"json": {"unexpected": 1}}
    for name in ("uid", "id"):
        if name in parameters:
            return concrete(path.replace("{" + name + "}", "0")), {}
    if "limit" in parameters:
        return url, {"params": {"limit": 0}}
    if "dry_run" in parameters:
        return url, {"params": {"dry_run": "perhaps"}}
    if "address" in parameters:
        invalid = concrete(path.replace("{address}", "not-an-address"))
        return invalid, {"content": b"Subject: x\r\n\r\nx\r\n", "headers": RFC822}
    if path.startswith("/api/v1/domains/"):
        return url.replace("INBOX", "-bad-"), {}
    if path.startswith("/api/v1/tokens/"):
        return url.replace("INBOX", "x" * 201), {}
    raise AssertionError(f"no invalid request known for {path}")


def test_every_operation_that_documents_422_gives_it(
    api_node: ApiNode, document: dict[str, Any]
) -> None:
    checked = 0
    for method, path, operation in operations(document):
        if "422" not in operation["responses"]:
            continue
        url, request = _invalid(path, operation)
        error(api_node.api.request(method, url, **request), 422)
        checked += 1
    assert checked >= 30


def test_every_operation_that_documents_413_gives_it(
    api_node: ApiNode, document: dict[str, Any]
) -> None:
    checked = 0
    for method, path, operation in operations(document):
        if "413" not in operation["responses"]:
            continue
        content = operation["requestBody"]["content"]
        if "message/rfc822" in content:
            response = api_node.api.request(
                method, concrete(path), content=b"x" * (MAX_APPEND + 1), headers=RFC822
            )
        else:
            big = b'{"name": "' + b"a" * (1 << 20) + b'"}'
            response = api_node.api.request(
                method, concrete(path), content=big, headers={"Content-Type": "application/json"}
            )
        error(response, 413, "too_large")
        checked += 1
    assert checked >= 9


def test_every_operation_that_documents_404_for_a_user_gives_it(
    api_node: ApiNode, document: dict[str, Any]
) -> None:
    """An address that is well-formed but no user's: 404 wherever a user is named."""
    nobody = f"nobody@{api_node.new_domain()}"
    checked = 0
    for method, path, operation in operations(document):
        if "{address}" not in path or not path.startswith("/api/v1/users/"):
            continue
        assert "404" in operation["responses"]
        url = concrete(path.replace("{address}", nobody))
        content = operation.get("requestBody", {}).get("content", {})
        if "message/rfc822" in content:
            response = api_node.api.request(method, url, content=b"S: x\r\n\r\n", headers=RFC822)
        elif "application/json" in content:
            body: dict[str, Any] = {"name": "Box"}
            if path.endswith("{uid}"):
                body = {"flags": []}
            elif path == "/api/v1/users/{address}":
                body = {"enabled": True}
            response = api_node.api.request(method, url, json=body)
        else:
            response = api_node.api.request(method, url)
        error(response, 404, "not_found")
        checked += 1
    assert checked >= 15
