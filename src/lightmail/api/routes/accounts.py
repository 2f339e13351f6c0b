"""Domains, users and aliases: ``/domains``, ``/users``, ``/aliases``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from lightmail.accounts.service import User as AccountUser
from lightmail.accounts.service import normalize_address, normalize_domain
from lightmail.api import schemas as s
from lightmail.api.deps import (
    Address,
    AliasAddress,
    Context,
    Cursor,
    DomainName,
    Limit,
    delete_route,
    paginate,
)
from lightmail.api.errors import ApiError, responses

router = APIRouter()

DomainFilter = Annotated[
    str | None, Query(min_length=1, max_length=253, description="Only this domain's entries.")
]


def _user(user: AccountUser) -> s.User:
    return s.User(
        address=user.address, quota=user.quota, enabled=user.enabled, created_at=user.created_at
    )


# -- domains -----------------------------------------------------------------------


@router.get("/domains", tags=["domains"], responses=responses(422))
async def list_domains(ctx: Context, limit: Limit = 100, cursor: Cursor = None) -> s.DomainPage:
    domains = await ctx.accounts.list_domains()
    page, after = paginate(domains, lambda domain: domain.name, str, limit, cursor)
    return s.DomainPage(
        items=[s.Domain(name=domain.name, users=domain.users) for domain in page],
        next_cursor=after,
    )


@router.post("/domains", status_code=201, tags=["domains"], responses=responses(409, 413, 422))
async def add_domain(ctx: Context, body: s.DomainIn) -> s.Domain:
    return s.Domain(name=await ctx.accounts.add_domain(body.name), users=0)


@delete_route(router, "/domains/{name}", "domains", 404, 409, 422)
async def delete_domain(
    ctx: Context,
    name: DomainName,
    force: Annotated[
        bool,
        Query(description="Also delete the domain's users (their mail is soft-deleted)."),
    ] = False,
) -> Response:
    """Delete a domain and its aliases; 409 while it has users, unless ``force=true``."""
    domain = normalize_domain(name)
    users = await ctx.accounts.list_users(domain)
    if users and not force:
        raise ApiError(
            409,
            "domain_not_empty",
            f"Domain {domain} still has {len(users)} user(s); delete them or add force=true.",
        )
    for user in users:
        await ctx.accounts.delete_user(user.address)
    await ctx.accounts.delete_domain(domain)
    return Response(status_code=204)


# -- users -----------------------------------------------------------------------------


@router.get("/users", tags=["users"], responses=responses(404, 422))
async def list_users(
    ctx: Context, domain: DomainFilter = None, limit: Limit = 100, cursor: Cursor = None
) -> s.UserPage:
    users = await ctx.accounts.list_users(domain)
    page, after = paginate(users, lambda user: user.address, str, limit, cursor)
    return s.UserPage(items=[_user(user) for user in page], next_cursor=after)


@router.post("/users", status_code=201, tags=["users"], responses=responses(404, 409, 413, 422))
async def add_user(ctx: Context, body: s.UserIn) -> s.User:
    """Add a user with the default mailboxes; 404 if the domain does not exist."""
    user = await ctx.accounts.add_user(body.address, body.password, body.quota)
    if not body.enabled:
        await ctx.accounts.set_enabled(user.address, False)
    return _user(await ctx.accounts.get_user(user.address))


@router.get("/users/{address}", tags=["users"], responses=responses(404, 422))
async def get_user(ctx: Context, address: Address) -> s.User:
    return _user(await ctx.accounts.get_user(address))


@router.patch("/users/{address}", tags=["users"], responses=responses(404, 413, 422))
async def update_user(ctx: Context, address: Address, body: s.UserPatch) -> s.User:
    """Change the password, quota or enabled state; fields left out stay as they are."""
    user = await ctx.accounts.get_user(address)
    if body.password is not None:
        await ctx.accounts.set_password(user.address, body.password)
    if "quota" in body.model_fields_set:
        await ctx.accounts.set_quota(user.address, body.quota)
    if body.enabled is not None:
        await ctx.accounts.set_enabled(user.address, body.enabled)
    return _user(await ctx.accounts.get_user(user.address))


@delete_route(router, "/users/{address}", "users", 404, 422)
async def delete_user(ctx: Context, address: Address) -> Response:
    """Delete a user, their aliases and mailboxes; their mail is purged after retention."""
    await ctx.accounts.delete_user(address)
    return Response(status_code=204)


@router.get("/users/{address}/usage", tags=["users"], responses=responses(404, 422))
async def get_usage(ctx: Context, address: Address) -> s.Usage:
    user = await ctx.accounts.get_user(address)
    used, count = await ctx.store.usage(user.id)
    return s.Usage(
        address=user.address,
        bytes=used,
        messages=count,
        quota=user.quota,
        available=None if user.quota is None else max(user.quota - used, 0),
    )


# -- aliases -----------------------------------------------------------------------------


def _alias_in(address: str) -> str:
    """The API's ``*@domain`` for a catch-all is the accounts layer's ``@domain``."""
    address = address.strip()
    if address.startswith("*@"):
        return "@" + normalize_domain(address[2:])
    if address.startswith("@"):
        return "@" + normalize_domain(address[1:])
    return normalize_address(address)


def _alias_out(address: str) -> str:
    return "*" + address if address.startswith("@") else address


@router.get("/aliases", tags=["aliases"], responses=responses(422))
async def list_aliases(
    ctx: Context, domain: DomainFilter = None, limit: Limit = 100, cursor: Cursor = None
) -> s.AliasPage:
    aliases = await ctx.accounts.list_aliases(domain)
    page, after = paginate(aliases, lambda alias: _alias_out(alias.address), str, limit, cursor)
    return s.AliasPage(
        items=[
            s.Alias(address=_alias_out(alias.address), targets=list(alias.targets))
            for alias in page
        ],
        next_cursor=after,
    )


@router.post("/aliases", status_code=201, tags=["aliases"], responses=responses(404, 409, 413, 422))
async def add_alias(ctx: Context, body: s.AliasIn) -> s.Alias:
    """Point an address (or a domain's catch-all, ``*@domain``) at users; the targets
    are added to those the alias already has."""
    alias = await ctx.accounts.add_alias(_alias_in(body.address), body.targets)
    return s.Alias(address=_alias_out(alias.address), targets=list(alias.targets))


@delete_route(router, "/aliases/{address}", "aliases", 404, 422)
async def delete_alias(ctx: Context, address: AliasAddress) -> Response:
    await ctx.accounts.delete_alias(_alias_in(address))
    return Response(status_code=204)
