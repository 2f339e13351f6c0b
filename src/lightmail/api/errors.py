"""The API's one mapping from errors to answers, and their OpenAPI description.

Every error answer is ``{"error": "<code>", "detail": "<sentence>"}``: the
protocol-neutral errors of :mod:`lightmail.errors`, request validation
errors (FastAPI's own body is replaced), routing errors and authentication.
A database or blob store that is down gives 503 with ``Retry-After``; an
unexpected exception is logged with its traceback and answered 500 without
its text.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from lightmail.api.schemas import ErrorBody
from lightmail.errors import (
    AlreadyExists,
    InvalidAddressData,
    InvalidCalendarData,
    InvalidMailboxName,
    InvalidValue,
    LightMailError,
    MailboxExists,
    MailboxNotAllowed,
    MailboxNotFound,
    MessageNotFound,
    MessageRejected,
    MessageTooLarge,
    NotFound,
    QuotaExceeded,
    TemporaryFailure,
)

log = logging.getLogger(__name__)

RETRY_AFTER = "5"  # seconds, on 503

_DESCRIPTIONS = {
    401: "Missing, malformed, revoked or unknown bearer token.",
    404: "Not found.",
    409: "Conflicts with the current state (already exists, not empty, over quota...).",
    413: "The body is larger than the limit (a message: [imap] max_append_size).",
    415: "The body's Content-Type is not the one the route takes (a message: message/rfc822,"
    " a calendar: text/calendar).",
    422: "The request is invalid (malformed value, bad cursor, refused content).",
    503: "The database or the blob store is unavailable; try again later.",
}


class ApiError(Exception):
    """An error answer raised by a route: status, code and sentence."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry for the given error statuses."""
    result: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {
                    "description": '`Bearer`, with `error="invalid_token"` for a bad token.',
                    "schema": {"type": "string"},
                }
            }
        elif status == 503:
            entry["headers"] = {
                "Retry-After": {"description": "Seconds.", "schema": {"type": "string"}}
            }
        result[status] = entry
    return result


def error_response(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        ErrorBody(error=code, detail=detail).model_dump(), status_code=status, headers=headers
    )


def challenge(*, invalid: bool) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a 401 (RFC 6750 section 3)."""
    value = 'Bearer realm="lightmail"'
    if invalid:
        value += ', error="invalid_token"'
    return {"WWW-Authenticate": value}


def unauthorized(detail: str, *, invalid: bool) -> JSONResponse:
    return error_response(401, "unauthorized", detail, challenge(invalid=invalid))


def unavailable() -> JSONResponse:
    return error_response(
        503,
        "unavailable",
        "The database or the blob store is unavailable; try again later.",
        {"Retry-After": RETRY_AFTER},
    )


# The one table: protocol-neutral error -> status and code; the first class that
# matches counts, so a subclass stands before its base.
_STATUSES: tuple[tuple[type[LightMailError], int, str], ...] = (
    (MailboxNotFound, 404, "mailbox_not_found"),
    (MessageNotFound, 404, "message_not_found"),
    (NotFound, 404, "not_found"),
    (MailboxExists, 409, "mailbox_exists"),
    (AlreadyExists, 409, "already_exists"),
    (MailboxNotAllowed, 409, "not_allowed"),
    (QuotaExceeded, 409, "over_quota"),
    (MessageTooLarge, 413, "too_large"),
    (InvalidMailboxName, 422, "invalid_mailbox_name"),
    (InvalidAddressData, 422, "invalid_vcard"),
    (InvalidCalendarData, 422, "invalid_calendar"),
    (InvalidValue, 422, "invalid_value"),
    (MessageRejected, 422, "rejected"),
)


def _for_error(error: LightMailError) -> tuple[int, str]:
    for kind, status, code in _STATUSES:
        if isinstance(error, kind):
            return status, code
    return 422, "refused"


async def _lightmail_error(request: Request, error: LightMailError) -> JSONResponse:
    if isinstance(error, TemporaryFailure):
        log.warning("api %s %s: %s", request.method, request.url.path, error)
        return unavailable()
    status, code = _for_error(error)
    return error_response(status, code, _sentence(str(error)))


async def _api_error(request: Request, error: ApiError) -> JSONResponse:
    return error_response(error.status, error.code, error.detail, error.headers)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item.get("loc", ()))
        problems.append(f"{where}: {item.get('msg', 'invalid')}" if where else item.get("msg", ""))
    detail = "; ".join(problems) or "the request is invalid"
    return error_response(422, "invalid_request", _sentence(detail))


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    if error.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8, not JSON): as
        # every other malformed request, a 422.
        return error_response(422, "invalid_request", "The request body could not be parsed.")
    code = _HTTP_CODES.get(error.status_code, "http_error")
    detail = error.detail if isinstance(error.detail, str) else "the request failed"
    if error.status_code == 404 and detail == "Not Found":
        detail = f"No route {request.url.path}"
    return error_response(error.status_code, code, _sentence(detail), error.headers)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    # Starlette re-raises it after this answer, so the server logs the traceback.
    log.error("api %s %s failed: %s", request.method, request.url.path, type(error).__name__)
    return error_response(500, "internal_error", "An internal error occurred; see the server log.")


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > 500:
        text = text[:497] + "..."
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    LightMailError: _lightmail_error,
    RequestValidationError: _validation_error,
    StarletteHTTPException: _http_error,
    Exception: _unexpected,
}
