"""The operator's tools: ``/quarantine``, ``/gc`` and ``/tokens``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from lightmail.accounts.tokens import ApiToken
from lightmail.api import schemas as s
from lightmail.api.deps import Context, Cursor, ItemId, Limit, TokenName, delete_route, paginate
from lightmail.api.errors import responses
from lightmail.api.routes.mail import RFC822, raw_response, stream

router = APIRouter()

# -- quarantine ---------------------------------------------------------------------


@router.get("/quarantine", tags=["quarantine"], responses=responses(422))
async def list_quarantine(
    ctx: Context, limit: Limit = 100, cursor: Cursor = None
) -> s.QuarantinePage:
    """Messages the virus scanner kept aside (``[antivirus] mode = quarantine``)."""
    items = await ctx.store.list_quarantine()
    page, after = paginate(items, lambda item: item.id, int, limit, cursor)
    return s.QuarantinePage(
        items=[
            s.Quarantined(
                id=item.id,
                sender=item.sender,
                recipients=list(item.recipients),
                virus=item.virus,
                size=item.size,
                created_at=item.created_at,
            )
            for item in page
        ],
        next_cursor=after,
    )


@router.get(
    "/quarantine/{id}/raw",
    tags=["quarantine"],
    response_class=StreamingResponse,
    responses=raw_response(RFC822, "The message as received.", 404, 422),
)
async def get_quarantined_raw(ctx: Context, id: ItemId) -> StreamingResponse:
    size, data = await ctx.store.read_quarantined(id)
    return await stream(data, size)


@router.post("/quarantine/{id}/release", tags=["quarantine"], responses=responses(404, 422))
async def release_quarantined(ctx: Context, id: ItemId) -> s.Released:
    """Deliver the message to its recipients' INBOX (skipping users deleted since)."""
    outcomes = await ctx.store.release_quarantine(id)
    return s.Released(id=id, delivered_to=[outcome.recipient.address for outcome in outcomes])


@delete_route(router, "/quarantine/{id}", "quarantine", 404, 422)
async def delete_quarantined(ctx: Context, id: ItemId) -> Response:
    await ctx.store.delete_quarantine(id)
    return Response(status_code=204)


# -- garbage collection -----------------------------------------------------------------


@router.get("/gc", tags=["gc"])
async def gc_status(ctx: Context) -> s.GcStatus:
    """The last garbage collection run and the soft-deleted mail waiting for one."""
    return s.GcStatus.model_validate(await ctx.gc.status())


@router.post("/gc/run", tags=["gc"], responses=responses(422))
async def gc_run(
    ctx: Context,
    dry_run: Annotated[bool, Query(description="Only count what a run would purge.")] = False,
) -> s.GcReport:
    """Run the garbage collector now: purge mail past retention, sweep orphan blobs."""
    return s.GcReport.model_validate(await ctx.gc.run(dry_run=dry_run))


# -- tokens ---------------------------------------------------------------------------


def _token(token: ApiToken) -> s.Token:
    return s.Token(name=token.name, created_at=token.created_at, last_used_at=token.last_used_at)


@router.get("/tokens", tags=["tokens"], responses=responses(422))
async def list_tokens(ctx: Context, limit: Limit = 100, cursor: Cursor = None) -> s.TokenPage:
    """The API tokens by name (never the tokens themselves)."""
    tokens = await ctx.tokens.list_tokens()
    page, after = paginate(tokens, lambda token: token.name, str, limit, cursor)
    return s.TokenPage(items=[_token(token) for token in page], next_cursor=after)


@router.post("/tokens", status_code=201, tags=["tokens"], responses=responses(409, 413, 422))
async def create_token(ctx: Context, body: s.TokenIn) -> s.NewToken:
    """Create a token; the answer is the only place it is ever shown."""
    token, secret = await ctx.tokens.create(body.name)
    return s.NewToken(**_token(token).model_dump(), token=secret)


@delete_route(router, "/tokens/{name}", "tokens", 404, 422)
async def revoke_token(ctx: Context, name: TokenName) -> Response:
    """Revoke a token at once (also the one making this request)."""
    await ctx.tokens.revoke(name)
    return Response(status_code=204)
