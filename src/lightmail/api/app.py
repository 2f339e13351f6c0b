"""The FastAPI application: routes under ``/api/v1``, the open system routes, errors.

The OpenAPI document (``/openapi.json``, browsable at ``/docs``) is the
contract: every operation declares its success body and each error answer it
can give (``{"error", "detail"}``), and the raw message routes declare
``message/rfc822`` for what they take and return.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response
from fastapi.routing import APIRoute

from lightmail import __version__
from lightmail.api.deps import API_PREFIX, ApiContext, Authenticate, LimitBody, authorized
from lightmail.api.errors import EXCEPTION_HANDLERS, responses
from lightmail.api.routes import accounts, addressbooks, calendars, mail, operations, system

_DESCRIPTION = """\
Administration of a LightMail node: domains, users, aliases, mailboxes and
messages, calendars, address books, the quarantine, the garbage collector and API tokens.

Every route under `/api/v1` needs `Authorization: Bearer <token>`; create the
first token with `lightmail token create NAME`. Errors are
`{"error": "<code>", "detail": "<sentence>"}`. Lists take `limit` and
`cursor` and answer `{"items": [...], "next_cursor": ...}`.
"""

_TAGS = [
    {"name": "domains"},
    {"name": "users"},
    {"name": "aliases", "description": "`*@domain` is a domain's catch-all."},
    {"name": "mailboxes", "description": "Names are percent-encoded; `/` separates levels."},
    {"name": "messages", "description": "Addressed by IMAP UID within their mailbox."},
    {
        "name": "calendars",
        "description": "The user's CalDAV calendars; import and export as `.ics` files.",
    },
    {
        "name": "address books",
        "description": "The user's CardDAV address books; import and export as `.vcf` files.",
    },
    {"name": "deleted", "description": "Soft-deleted messages, restorable until purged."},
    {"name": "quarantine"},
    {"name": "gc", "description": "The garbage collector."},
    {"name": "tokens"},
    {"name": "system", "description": "Health, readiness and Prometheus metrics."},
]


def _operation_id(route: APIRoute) -> str:
    """The route function's name (``list_users``), for readable generated clients."""
    return route.name


def create_app(context: ApiContext) -> FastAPI:
    metrics_auth = context.settings.api.metrics_auth
    app = FastAPI(
        title="LightMail",
        version=__version__,
        description=_DESCRIPTION,
        openapi_tags=_TAGS,
        docs_url="/docs",
        redoc_url=None,
        redirect_slashes=False,
        exception_handlers=EXCEPTION_HANDLERS,
        generate_unique_id_function=_operation_id,
    )
    app.state.context = context

    app.include_router(system.router)
    app.add_api_route(
        "/metrics",
        system.metrics,
        methods=["GET"],
        tags=["system"],
        response_class=Response,
        responses={**system.METRICS_RESPONSES, **(responses(401, 503) if metrics_auth else {})},
        dependencies=[Depends(authorized)] if metrics_auth else None,
    )

    v1 = APIRouter(
        prefix=API_PREFIX, dependencies=[Depends(authorized)], responses=responses(401, 503)
    )
    v1.include_router(accounts.router)
    v1.include_router(mail.router)
    v1.include_router(calendars.router)
    v1.include_router(addressbooks.router)
    v1.include_router(operations.router)
    app.include_router(v1)

    # The last added runs first: authentication before anything reads the body.
    app.add_middleware(LimitBody)
    app.add_middleware(Authenticate, tokens=context.tokens, metrics_auth=metrics_auth)
    return app
