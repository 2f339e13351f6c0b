"""Schemathesis against the node's own OpenAPI document: every operation, bounded.

Each operation gets a few generated requests, valid ones and invalid ones;
every answer must be one the document declares, with the declared media type
and body, never a 5xx, and never a secret.

The operations are parametrized from the app's document (built here without
a node) and tested against the document the running node serves. The
strategies are driven with hypothesis directly: schemathesis' lazy pytest
loader does not work with this pytest.
"""

from __future__ import annotations

from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lightmail.api.app import create_app
from lightmail.api.deps import ApiContext
from lightmail.config import load_settings
from tests.integration.api.conftest import PASSWORD, ApiNode
from tests.integration.api.test_auth import _Settings

MAX_EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 3}


@schemathesis.serializer("message/rfc822", "text/calendar", "text/vcard")
def _raw(ctx: Any, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def _cases() -> list[tuple[str, str, GenerationMode]]:
    """Every operation in both modes; no invalid requests for those that take nothing."""
    app = create_app(cast(ApiContext, _Settings(load_settings(None, {}))))
    cases = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            cases.append((method.upper(), path, GenerationMode.POSITIVE))
            if operation.get("parameters") or operation.get("requestBody"):
                cases.append((method.upper(), path, GenerationMode.NEGATIVE))
    return cases


@pytest.fixture(scope="package")
def api_schema(api_node: ApiNode) -> Any:
    document = api_node.client("").get("/openapi.json").json()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.update(base_url=api_node.base_url)
    return loaded


def _no_secrets(ctx: Any, response: Response, case: Case[Any]) -> bool | None:
    """No answer carries a password, a password hash, or the test's token."""
    text = response.content.decode("utf-8", "replace") if response.content else ""
    for secret in ("$argon2", "$2b$", "$2a$", PASSWORD, "lm_"):
        if secret == "lm_" and case.path == "/api/v1/tokens" and case.method == "POST":
            continue  # the one answer that shows a (new) token
        assert secret not in text, f"{secret!r} in the answer to {case.method} {case.path}"
    return None


# Whether the document's types are as strict as the server (a well-formed string
# that is no address is a 422; unknown query parameters are ignored) is not
# checked: the answers must only be declared ones, well-formed, and no 5xx.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
    _no_secrets,
]


@pytest.mark.parametrize(("method", "path", "mode"), _cases())
def test_operation_keeps_to_the_document(
    api_node: ApiNode, api_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    headers = {"Authorization": f"Bearer {api_node.token}"}

    @given(data=st.data())
    @settings(
        max_examples=MAX_EXAMPLES[mode],
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
