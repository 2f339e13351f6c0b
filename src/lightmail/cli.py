"""The ``lightmail`` command: run a node and manage it.

Exit codes: 0 success, 1 a refused request (unknown domain, duplicate user,
...), 2 bad usage or configuration, 75 (EX_TEMPFAIL) when the database or
blob store is unavailable, so scripts can retry.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from lightmail import runtime
from lightmail.calendars.store import CalendarStore
from lightmail.calendars.transfer import export_calendar, import_calendar
from lightmail.config import Settings, load_settings, parse_size, resolve_config_path, values
from lightmail.config.values import worker_count
from lightmail.errors import ConfigError, LightMailError, TemporaryFailure
from lightmail.gc import GcWorker
from lightmail.storage.db.engine import Database, SchemaOutdated, describe_url

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, None]]
NodeHandler = Callable[[argparse.Namespace, runtime.Node], Coroutine[Any, Any, None]]
PasswordHandler = Callable[[argparse.Namespace, runtime.Node, str], Coroutine[Any, Any, None]]


def format_size(size: int | None) -> str:
    """Bytes in the units the config and CLI accept (exact, so it reads back)."""
    return "unlimited" if size is None else values.format_size(size)


def _quota(text: str) -> int | None:
    if text.lower() in ("unlimited", "none"):
        return None
    try:
        return parse_size(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size: use 2048, 2K, 64M, 1G or 'unlimited'"
        ) from None


def _workers(text: str) -> int:
    try:
        return worker_count(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number from 1 to 1024 or auto"
        ) from None


def _read_password(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.password_stdin:
        return stdin.readline().rstrip("\r\n")
    if args.password is not None:
        return str(args.password)
    if not stdin.isatty():
        raise LightMailError("give the password with --password or --password-stdin")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise LightMailError("the passwords do not match")
    return first


def _on_node(handler: NodeHandler) -> Handler:
    """``handler`` run with the node open, closed after it returns or raises."""

    async def run(args: argparse.Namespace, settings: Settings) -> None:
        async with runtime.open_node(settings) as node:
            await handler(args, node)

    return run


def _on_node_with_password(handler: PasswordHandler) -> Handler:
    """``handler`` given the password, read before the node opens (a prompt does not
    hold database connections), run with the node open as by :func:`_on_node`."""

    async def run(args: argparse.Namespace, settings: Settings) -> None:
        password = _read_password(args, sys.stdin)
        async with runtime.open_node(settings) as node:
            await handler(args, node, password)

    return run


# -- command handlers -------------------------------------------------------


async def _serve(args: argparse.Namespace, settings: Settings) -> None:
    from lightmail import workers

    await workers.serve(settings, args.workers, args.worker_channel)


async def _check_config(args: argparse.Namespace, settings: Settings) -> None:
    print(f"configuration OK ({args.config_path or 'built-in defaults'})")
    print(f"database: {describe_url(settings.database.url)}")
    print(f"blobs: {settings.blobs.url}")


async def _db_upgrade(args: argparse.Namespace, settings: Settings) -> None:
    if settings.database.url.startswith("sqlite"):
        settings.server.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.database.url, connect_timeout=settings.database.connect_timeout)
    try:
        before = await db.current_revision()
        after = await db.upgrade()
    finally:
        await db.close()
    if before == after:
        print(f"database schema already at revision {after}")
    else:
        print(f"database schema upgraded from {before or 'empty'} to revision {after}")


@_on_node
async def _domain_add(args: argparse.Namespace, node: runtime.Node) -> None:
    print(f"added domain {await node.accounts.add_domain(args.name)}")


@_on_node
async def _domain_list(args: argparse.Namespace, node: runtime.Node) -> None:
    for domain in await node.accounts.list_domains():
        print(f"{domain.name}\t{domain.users} user(s)")


@_on_node
async def _domain_delete(args: argparse.Namespace, node: runtime.Node) -> None:
    await node.accounts.delete_domain(args.name)
    print(f"deleted domain {args.name}")


@_on_node_with_password
async def _user_add(args: argparse.Namespace, node: runtime.Node, password: str) -> None:
    user = await node.accounts.add_user(args.address, password, args.quota)
    print(f"added user {user.address} (quota {format_size(user.quota)})")


@_on_node
async def _user_list(args: argparse.Namespace, node: runtime.Node) -> None:
    for user in await node.accounts.list_users(args.domain):
        used, count = await node.store.usage(user.id)
        state = "enabled" if user.enabled else "disabled"
        print(
            f"{user.address}\t{state}\tquota {format_size(user.quota)}"
            f"\tused {format_size(used) if used else '0'} in {count} message(s)"
        )


@_on_node_with_password
async def _user_passwd(args: argparse.Namespace, node: runtime.Node, password: str) -> None:
    await node.accounts.set_password(args.address, password)
    print(f"password changed for {args.address}")


@_on_node
async def _user_set_quota(args: argparse.Namespace, node: runtime.Node) -> None:
    await node.accounts.set_quota(args.address, args.size)
    print(f"quota of {args.address} set to {format_size(args.size)}")


@_on_node
async def _user_enable(args: argparse.Namespace, node: runtime.Node) -> None:
    await node.accounts.set_enabled(args.address, args.enabled)
    print(f"{args.address} {'enabled' if args.enabled else 'disabled'}")


async def _user_delete(args: argparse.Namespace, settings: Settings) -> None:
    if not args.yes:
        raise LightMailError(
            f"deleting {args.address} deletes all of their mail; add --yes to confirm"
        )
    async with runtime.open_node(settings) as node:
        await node.accounts.delete_user(args.address)
        print(f"deleted user {args.address}; their mail is purged after the GC retention")


@_on_node
async def _alias_add(args: argparse.Namespace, node: runtime.Node) -> None:
    alias = await node.accounts.add_alias(args.address, args.targets)
    print(f"{alias.address} -> {', '.join(alias.targets)}")


@_on_node
async def _alias_list(args: argparse.Namespace, node: runtime.Node) -> None:
    for alias in await node.accounts.list_aliases(args.domain):
        print(f"{alias.address}\t{', '.join(alias.targets)}")


@_on_node
async def _alias_delete(args: argparse.Namespace, node: runtime.Node) -> None:
    await node.accounts.delete_alias(args.address, args.targets)
    print(
        f"deleted alias {args.address}" + (f" -> {', '.join(args.targets)}" if args.targets else "")
    )


def _collections(args: argparse.Namespace, node: runtime.Node) -> CalendarStore:
    """The store the command is about: calendars, or (``lightmail addressbook``) address
    books; the two groups share their commands."""
    return node.accounts.contacts if args.collection == "addressbook" else node.accounts.calendars


@_on_node
async def _calendar_list(args: argparse.Namespace, node: runtime.Node) -> None:
    user = await node.accounts.get_user(args.address)
    for calendar in await _collections(args, node).list_calendars(user.id):
        print(
            f"{calendar.name}\t{calendar.display_name}\t{','.join(calendar.components)}"
            f"\tsync token {calendar.sync_token}"
        )


@_on_node
async def _calendar_create(args: argparse.Namespace, node: runtime.Node) -> None:
    user = await node.accounts.get_user(args.address)
    store = _collections(args, node)
    components = getattr(args, "components", None)
    calendar = await store.create_calendar(
        user.id,
        args.name,
        display_name=args.display_name,
        color=getattr(args, "color", ""),
        components=None if components is None else components.split(","),
    )
    print(f"created {store.kind.label} {calendar.name} of {user.address}")


async def _calendar_delete(args: argparse.Namespace, settings: Settings) -> None:
    label = args.collection.replace("addressbook", "address book")
    if not args.yes:
        raise LightMailError(
            f"deleting {label} {args.name} deletes all of its entries; add --yes to confirm"
        )
    async with runtime.open_node(settings) as node:
        user = await node.accounts.get_user(args.address)
        await _collections(args, node).delete_calendar(user.id, args.name)
    print(f"deleted {label} {args.name} of {args.address}")


def _read_input(file: str) -> bytes:
    return sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()


async def _calendar_import(args: argparse.Namespace, settings: Settings) -> None:
    try:
        data = await asyncio.to_thread(_read_input, args.file)
    except OSError as error:
        raise LightMailError(f"cannot read {args.file}: {error.strerror}") from None
    async with runtime.open_node(settings) as node:
        user = await node.accounts.get_user(args.address)
        store = _collections(args, node)
        report = await import_calendar(store, user.id, args.name, data)
    print(
        f"imported into {store.kind.label} {args.name} of {user.address}: "
        f"{report.created} new, {report.replaced} replaced"
    )


async def _calendar_export(args: argparse.Namespace, settings: Settings) -> None:
    async with runtime.open_node(settings) as node:
        user = await node.accounts.get_user(args.address)
        store = _collections(args, node)
        data = await export_calendar(store, user.id, args.name)
    if args.file == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        await asyncio.to_thread(Path(args.file).write_bytes, data)
    except OSError as error:
        raise LightMailError(f"cannot write {args.file}: {error.strerror}") from None
    print(f"exported {store.kind.label} {args.name} of {user.address} to {args.file}")


@_on_node
async def _quarantine_list(args: argparse.Namespace, node: runtime.Node) -> None:
    for item in await node.store.list_quarantine():
        when = item.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{item.id}\t{when}\t{item.virus}\tfrom <{item.sender}>"
            f"\tto {', '.join(item.recipients)}\t{format_size(item.size)}"
        )


@_on_node
async def _quarantine_release(args: argparse.Namespace, node: runtime.Node) -> None:
    outcomes = await node.store.release_quarantine(args.id)
    delivered = ", ".join(o.recipient.address for o in outcomes) or "nobody (users gone)"
    print(f"released {args.id} to {delivered}")


@_on_node
async def _quarantine_delete(args: argparse.Namespace, node: runtime.Node) -> None:
    await node.store.delete_quarantine(args.id)
    print(f"deleted quarantined message {args.id}")


async def _token_create(args: argparse.Namespace, settings: Settings) -> None:
    async with runtime.open_node(settings) as node:
        token, secret = await node.tokens.create(args.name)
    print(f"created API token {token.name}; it is shown only this once, keep it safe:")
    print(secret)


@_on_node
async def _token_list(args: argparse.Namespace, node: runtime.Node) -> None:
    for token in await node.tokens.list_tokens():
        used = token.last_used_at.strftime("%Y-%m-%d %H:%M:%S") if token.last_used_at else "never"
        print(
            f"{token.name}\tcreated {token.created_at.strftime('%Y-%m-%d %H:%M:%S')}"
            f"\tlast used {used}"
        )


async def _token_revoke(args: argparse.Namespace, settings: Settings) -> None:
    async with runtime.open_node(settings) as node:
        await node.tokens.revoke(args.name)
    print(f"revoked API token {args.name}")


@_on_node
async def _gc_run(args: argparse.Namespace, node: runtime.Node) -> None:
    if not (args.once or args.dry_run):
        with runtime.stop_signals() as stop:
            worker = GcWorker(node.gc, node.settings.gc.interval)
            await worker.start()
            await stop.wait()
            await worker.stop()
        return
    report = await node.gc.run(dry_run=args.dry_run)
    verb = "would purge" if args.dry_run else "purged"
    print(
        f"{verb} {report.messages_purged} message(s): {report.blobs_deleted} blob(s) "
        f"and {report.orphans_deleted} orphan blob(s), "
        f"{format_size(report.bytes_freed)} freed"
    )
    if report.calendar_objects_purged:
        print(f"{verb} {report.calendar_objects_purged} calendar object(s) (blobs counted above)")
    if report.incomplete_removed:
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {report.incomplete_removed} unfinished blob write(s)")


# -- argument parsing ---------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    config_help = "configuration file (default: $LIGHTMAIL_CONFIG, else ./config.ini if present)"
    parser = argparse.ArgumentParser(prog="lightmail", description="LightMail mail store server")
    parser.add_argument("--config", metavar="FILE", help=config_help)
    # Each command takes --config too. Its default is SUPPRESS: a command without the
    # option must leave the value given before the command alone (argparse lets a
    # subparser's defaults overwrite the main parser's).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        handler: Handler,
        help_text: str,
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help_text, description=help_text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    def group(name: str, help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")

    serve = leaf(commands, "serve", _serve, "run the server until SIGTERM or SIGINT")
    serve.add_argument(
        "--workers", type=_workers, metavar="N|auto", help="worker processes ([server] workers)"
    )
    serve.add_argument("--worker-channel", type=int, help=argparse.SUPPRESS)  # set by a supervisor
    leaf(commands, "check-config", _check_config, "validate the configuration and exit")

    db = group("db", "database schema")
    leaf(db, "upgrade", _db_upgrade, "create or upgrade the database schema")

    domain = group("domain", "manage domains")
    leaf(domain, "add", _domain_add, "add a domain").add_argument("name")
    leaf(domain, "list", _domain_list, "list domains")
    leaf(domain, "delete", _domain_delete, "delete a domain that has no users").add_argument("name")

    user = group("user", "manage users")

    def with_password(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        source = sub.add_mutually_exclusive_group()
        source.add_argument("--password", metavar="PW", help="the password (visible in ps)")
        source.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )
        return sub

    add = with_password(leaf(user, "add", _user_add, "add a user"))
    add.add_argument("address")
    add.add_argument(
        "--quota", type=_quota, default=None, metavar="SIZE", help="e.g. 2G (default: unlimited)"
    )
    leaf(user, "list", _user_list, "list users").add_argument("--domain")
    with_password(leaf(user, "passwd", _user_passwd, "change a password")).add_argument("address")
    quota = leaf(user, "set-quota", _user_set_quota, "set a user's quota")
    quota.add_argument("address")
    quota.add_argument("size", type=_quota, help="e.g. 2G, or 'unlimited'")
    for name, enabled in (("enable", True), ("disable", False)):
        sub = leaf(user, name, _user_enable, f"{name} a user's login and delivery")
        sub.add_argument("address")
        sub.set_defaults(enabled=enabled)
    delete = leaf(user, "delete", _user_delete, "delete a user and all of their mail")
    delete.add_argument("address")
    delete.add_argument("--yes", action="store_true", help="confirm the deletion")

    alias = group("alias", "manage aliases (an address of '@domain' is its catch-all)")
    add_alias = leaf(alias, "add", _alias_add, "point an address at one or more users")
    add_alias.add_argument("address")
    add_alias.add_argument("targets", nargs="+", metavar="TARGET")
    leaf(alias, "list", _alias_list, "list aliases").add_argument("--domain")
    delete_alias = leaf(alias, "delete", _alias_delete, "delete an alias or some of its targets")
    delete_alias.add_argument("address")
    delete_alias.add_argument("targets", nargs="*", metavar="TARGET")

    for command, label, suffix, protocol in (
        ("calendar", "calendar", ".ics", "CalDAV"),
        ("addressbook", "address book", ".vcf", "CardDAV"),
    ):
        collection = group(command, f"manage a user's {label}s (as served over {protocol})")
        listing = leaf(collection, "list", _calendar_list, f"list a user's {label}s")
        listing.add_argument("address")
        create = leaf(collection, "create", _calendar_create, f"create an empty {label}")
        create.add_argument("address")
        create.add_argument("name", help=f"the path segment in {protocol} URLs")
        create.add_argument("--display-name", default="", help="default: the name")
        if command == "calendar":
            create.add_argument("--color", default="", help="e.g. #3a87adff")
            create.add_argument(
                "--components", default="VEVENT,VTODO", help="what it holds (default: VEVENT,VTODO)"
            )
        delete = leaf(collection, "delete", _calendar_delete, f"delete a {label} and its entries")
        delete.add_argument("address")
        delete.add_argument("name")
        delete.add_argument("--yes", action="store_true", help="confirm the deletion")
        importing = leaf(
            collection,
            "import",
            _calendar_import,
            f"import a {suffix} file: one object per UID, replacing those with the same UID; "
            "all or nothing",
        )
        exporting = leaf(
            collection, "export", _calendar_export, f"export a {label} as one {suffix} file"
        )
        for sub, verb in ((importing, "read"), (exporting, "write")):
            sub.add_argument("address")
            sub.add_argument("name")
            sub.add_argument(
                "file", nargs="?", default="-", help=f"the file to {verb} (default: -)"
            )
        for sub in (listing, create, delete, importing, exporting):
            sub.set_defaults(collection=command)

    quarantine = group("quarantine", "messages the virus scanner kept aside")
    leaf(quarantine, "list", _quarantine_list, "one line per message: id, date, virus, addresses")
    leaf(
        quarantine, "release", _quarantine_release, "deliver to the recipients' INBOX"
    ).add_argument("id", type=int)
    leaf(quarantine, "delete", _quarantine_delete, "delete for good").add_argument("id", type=int)

    token = group("token", "bearer tokens for the HTTP API")
    leaf(
        token, "create", _token_create, "create a token; it is printed once, on the last line"
    ).add_argument("name")
    leaf(token, "list", _token_list, "list tokens by name (the tokens themselves are not kept)")
    leaf(token, "revoke", _token_revoke, "revoke a token at once").add_argument("name")

    gc = group("gc", "garbage collection of deleted mail")
    gc_run = leaf(
        gc,
        "run",
        _gc_run,
        "purge deleted mail past [gc] retention and orphan blobs (every [gc] interval "
        "until SIGTERM, or once)",
    )
    gc_run.add_argument("--once", action="store_true", help="one run, then exit")
    gc_run.add_argument(
        "--dry-run", action="store_true", help="print what one run would delete; change nothing"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.config_path = resolve_config_path(args.config, os.environ)
        settings = load_settings(args.config_path, os.environ)
    except ConfigError as error:
        print(f"lightmail: {error}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=settings.log.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per migration is noise
    handler: Handler = args.handler
    try:
        if args.command == "serve":
            import uvloop

            uvloop.run(handler(args, settings))
        else:
            asyncio.run(handler(args, settings))
    except ConfigError as error:
        print(f"lightmail: {error}", file=sys.stderr)
        return EXIT_USAGE
    except TemporaryFailure as error:
        print(f"lightmail: temporary failure, try again: {error}", file=sys.stderr)
        return EXIT_TEMPFAIL
    except (LightMailError, SchemaOutdated) as error:
        print(f"lightmail: {error}", file=sys.stderr)
        return EXIT_REFUSED
    return 0
