"""What every route shares: the node's parts, authentication, paging, path types.

Authentication is enforced by :class:`Authenticate`, an ASGI middleware in
front of routing, so a request without a valid token is refused before its
body is read or parsed. The :data:`Authorized` dependency only declares the
bearer scheme in the OpenAPI document and hands the route the token the
middleware accepted; a protected route the middleware did not cover fails
closed (401).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.types import DecoratedCallable
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lightmail.accounts.service import Accounts
from lightmail.accounts.tokens import ApiToken, ApiTokens
from lightmail.antivirus.clamd import ClamdClient
from lightmail.api.errors import (
    ApiError,
    challenge,
    error_response,
    responses,
    unauthorized,
    unavailable,
)
from lightmail.api.schemas import MAX_ID, MAX_UID
from lightmail.config import Settings
from lightmail.errors import TemporaryFailure
from lightmail.gc import GarbageCollector
from lightmail.mailstore.store import MailStore

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
MAX_JSON_BODY = 1 << 20  # bytes; raw messages have their own limit ([imap] max_append_size)


class HealthCheck(Protocol):
    """Whether the node's storage answers (``/ready``); built by the runtime."""

    async def check(self) -> None:
        """Return when it answers; raise when it does not."""
        ...


@dataclass(frozen=True, slots=True)
class ApiContext:
    """The parts of a node the API uses, built once by the runtime."""

    settings: Settings
    store: MailStore
    accounts: Accounts
    gc: GarbageCollector
    tokens: ApiTokens
    health: HealthCheck
    scanner: ClamdClient | None  # None unless [antivirus] scan_append: as for IMAP APPEND


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]

# -- authentication -----------------------------------------------------------------

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="A token from `lightmail token create NAME` or `POST /api/v1/tokens`.",
)


def authorized(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiToken:
    token = request.scope.get("state", {}).get("token")
    if not isinstance(token, ApiToken):
        raise ApiError(
            401, "unauthorized", "A valid bearer token is required.", challenge(invalid=False)
        )
    return token


Authorized = Annotated[ApiToken, Depends(authorized)]


def is_protected(path: str, *, metrics_auth: bool) -> bool:
    return (
        path.startswith(API_PREFIX + "/")
        or path == API_PREFIX
        or (metrics_auth and path == "/metrics")
    )


class Authenticate:
    """Refuse protected paths without a valid ``Authorization: Bearer`` token (401)."""

    def __init__(self, app: ASGIApp, *, tokens: ApiTokens, metrics_auth: bool) -> None:
        self.app = app
        self.tokens = tokens
        self.metrics_auth = metrics_auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(
            scope["path"], metrics_auth=self.metrics_auth
        ):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization")
        if header is None:
            response = unauthorized("A bearer token is required.", invalid=False)
            await response(scope, receive, send)
            return
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        token = None
        if scheme.lower() == "bearer" and secret:
            try:
                token = await self.tokens.verify(secret)
            except TemporaryFailure as error:
                log.warning("api: cannot check a token: %s", error)
                await unavailable()(scope, receive, send)
                return
        if token is None:
            response = unauthorized("The bearer token is not valid.", invalid=True)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["token"] = token
        if scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            # An audit trail of changes: who, what, and how it went.
            log.info(
                "api: token %s: %s %s -> %s",
                token.name,
                scope["method"],
                scope["path"],
                status or "no answer",
            )


class LimitBody:
    """Keep JSON bodies to :data:`MAX_JSON_BODY`: 413 by their Content-Length, and a
    body that streams past it is cut off (its parse then fails: 422).

    POSTs of raw messages and calendar imports are left to their route, which
    limits them.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope["method"] == "POST" and scope["path"].endswith(("/messages", "/import"))
        ):
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > MAX_JSON_BODY:
            response = error_response(
                413, "too_large", f"The request body is over {MAX_JSON_BODY} bytes."
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_JSON_BODY:
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, limited_receive, send)


# -- paths and paging ---------------------------------------------------------------

_ONE_SEGMENT = r"^[^/]+$"
DomainName = Annotated[str, Path(min_length=1, max_length=253, pattern=_ONE_SEGMENT)]
Address = Annotated[
    str,
    Path(
        min_length=1,
        max_length=320,
        pattern=_ONE_SEGMENT,
        description="The user's address.",
        examples=["alice@example.org"],
    ),
]
AliasAddress = Annotated[
    str,
    Path(
        min_length=1,
        max_length=320,
        pattern=_ONE_SEGMENT,
        description="The alias address, or `*@domain` for the catch-all.",
    ),
]
MailboxName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=1000,
        description="The mailbox name, percent-encoded; `/` separates levels.",
        examples=["INBOX", "Archive/2024"],
    ),
]
Uid = Annotated[int, Path(ge=1, le=MAX_UID, description="The message's IMAP UID.")]
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
TokenName = Annotated[str, Path(min_length=1, max_length=200, pattern=_ONE_SEGMENT)]

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many items.")]
Cursor = Annotated[
    str | None,
    Query(max_length=2000, description="`next_cursor` of the previous page; omit for the first."),
]

T = TypeVar("T")
K = TypeVar("K", str, int)


def encode_cursor(key: str | int) -> str:
    kind = "i" if isinstance(key, int) else "s"
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type[K]) -> K | None:
    """The key a cursor of this list stands for; 422 ``invalid_cursor`` if it is not one."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        text = ""
    tag, _, value = text.partition(":")
    if kind is int and tag == "i" and value.isdigit() and value.isascii():
        return kind(value)
    if kind is str and tag == "s":
        return kind(value)
    raise ApiError(422, "invalid_cursor", "The cursor is not one this list gave out.")


def paginate(
    items: Sequence[T], key: Callable[[T], K], kind: type[K], limit: int, cursor: str | None
) -> tuple[list[T], str | None]:
    """One page of ``items`` (sorted by ``key``), after the key the cursor names."""
    after = decode_cursor(cursor, kind)
    ordered = sorted(items, key=key)
    if after is not None:
        ordered = [item for item in ordered if key(item) > after]
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, encode_cursor(key(page[-1])) if more and page else None


def delete_route(
    router: APIRouter, path: str, tag: str, *statuses: int
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A DELETE route that answers 204 with no body, or one of the error ``statuses``."""
    return router.delete(
        path,
        status_code=204,
        tags=[tag],
        responses=responses(*statuses),
        response_class=Response,
    )
