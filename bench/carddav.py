"""CardDAV rates on the embedded backend (SQLite and a blob folder): PUT of ``--cards``
vCards (default 2,000) into one address book, then ``addressbook-query`` (an FN
text-match that one card meets) and a full ``sync-collection``, each timed over
``--queries`` rounds, through the real server on a loopback port with httpx.

addressbook-query reads and parses every vCard of the book, so its time grows
with the book; this prints how much.

    uv run python bench/carddav.py
    uv run python bench/carddav.py --cards 10000 --queries 5
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from lightmail.accounts.service import Accounts
from lightmail.config import TcpAddress, load_settings
from lightmail.dav.server import dav_servers
from lightmail.mailstore.store import MailStore
from lightmail.notify.bus import InProcessNotificationBus
from lightmail.storage.blobs import FileSystemBlobStore
from lightmail.storage.db.engine import Database

QUERY = (
    '<?xml version="1.0"?><C:addressbook-query xmlns:D="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/></D:prop><C:filter>'
    '<C:prop-filter name="FN"><C:text-match match-type="starts-with">Person 7'
    "</C:text-match></C:prop-filter></C:filter></C:addressbook-query>"
)
SYNC = (
    '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/>'
    "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"
)


def card(n: int) -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:card-{n}\r\nFN:Person {n}\r\nN:{n};Person;;;\r\n"
        f"EMAIL;TYPE=work:person{n}@example.org\r\nTEL;TYPE=cell:+1 555 {n:07d}\r\n"
        "END:VCARD\r\n"
    ).encode()


async def run(cards: int, queries: int, folder: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{folder / 'bench.db'}")
    await db.upgrade()
    blobs = FileSystemBlobStore(folder / "blobs")
    accounts = Accounts(MailStore(db, blobs, InProcessNotificationBus()))
    await accounts.add_domain("bench.example")
    user = await accounts.add_user("u@bench.example", "secret")
    environ = {"LIGHTMAIL_SERVER_DATA_DIR": str(folder), "LIGHTMAIL_DAV_LISTEN": "127.0.0.1:0"}
    (server,) = dav_servers(load_settings(None, environ), accounts)
    await server.start()
    address = server.bound_addresses[0]
    assert isinstance(address, TcpAddress)
    book = f"http://127.0.0.1:{address.port}/addressbooks/{user.address}/default/"
    try:
        async with httpx.AsyncClient(auth=(user.address, "secret"), timeout=600) as http:
            started = time.perf_counter()
            for n in range(cards):
                answer = await http.put(f"{book}{n}.vcf", content=card(n))
                assert answer.status_code == 201, answer.text
            put_seconds = time.perf_counter() - started
            started = time.perf_counter()
            for _ in range(queries):
                answer = await http.request("REPORT", book, content=QUERY, headers={"Depth": "1"})
                assert answer.status_code == 207
            query_seconds = (time.perf_counter() - started) / queries
            started = time.perf_counter()
            for _ in range(queries):
                answer = await http.request("REPORT", book, content=SYNC)
                assert answer.status_code == 207
            sync_seconds = (time.perf_counter() - started) / queries
    finally:
        await server.stop()
        await blobs.close()
        await db.close()
    print(f"{cards} vCards, one client, SQLite + blob folder")
    print(f"PUT: {cards / put_seconds:.0f}/s")
    print(f"addressbook-query (FN starts-with): {query_seconds * 1000:.0f} ms each")
    print(f"sync-collection (full): {sync_seconds * 1000:.0f} ms each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(args.cards, args.queries, Path(folder)))


if __name__ == "__main__":
    main()
