"""Hostile requests get a 4xx with flat memory: entity expansion, external entities,
deep nesting, bodies past the limits, plain HTTP from outside the trusted networks."""

from __future__ import annotations

import asyncio
import base64
import ssl
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.conftest import Backend
from tests.integration.dav.conftest import PASSWORD, DavTarget, running_dav

MB = 1 << 20

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol9;</D:displayname></D:prop></D:propfind>
"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE propfind [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&secret;</D:displayname></D:prop></D:propfind>
"""

DEEP = b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:">' + b"<D:a>" * 5000 + b"</D:a>" * 5000


async def measured(request: AsyncIterator[httpx.Response]) -> tuple[httpx.Response, int]:
    """The answer and the peak bytes this process allocated while it came."""
    tracemalloc.start()
    try:
        answer = await anext(request)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return answer, peak


async def propfind(dav: DavTarget, body: bytes) -> AsyncIterator[httpx.Response]:
    user = await dav.new_user()
    async with httpx.AsyncClient(auth=(user.address, PASSWORD)) as http:
        yield await http.request(
            "PROPFIND",
            f"{dav.url}/calendars/{user.address}/",
            content=body,
            headers={"Depth": "0", "Content-Type": "application/xml"},
        )


@pytest.mark.parametrize(
    "body", [BILLION_LAUGHS, EXTERNAL_ENTITY, DEEP], ids=["billion-laughs", "xxe", "deep"]
)
async def test_hostile_xml_is_refused_with_400_and_flat_memory(dav: DavTarget, body: bytes) -> None:
    answer, peak = await measured(propfind(dav, body))
    assert answer.status_code == 400, answer.text
    assert b"lollol" not in answer.content
    assert b"root:" not in answer.content
    assert peak < 4 * MB


async def _stream_huge(dav: DavTarget, method: str, path: str, declare: bool) -> bytes:
    """Send a 64 MB body (chunked, or with its Content-Length declared) over a raw
    socket, stop when the server answers or closes, and return its answer."""
    user = await dav.new_user()
    credentials = base64.b64encode(f"{user.address}:{PASSWORD}".encode()).decode()
    reader, writer = await asyncio.open_connection(dav.host, dav.port)
    size = 64 * MB
    framing = f"Content-Length: {size}" if declare else "Transfer-Encoding: chunked"
    writer.write(
        f"{method} {path.format(user=user.address)} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Basic {credentials}\r\nContent-Type: text/calendar\r\nDepth: 0\r\n"
        f"{framing}\r\n\r\n".encode()
    )
    chunk = b"X" * (64 * 1024)
    framed = chunk if declare else b"%x\r\n%s\r\n" % (len(chunk), chunk)
    answer = asyncio.create_task(reader.read(4096))
    try:
        for _ in range(size // len(chunk)):
            if answer.done():  # the server answered before the body was through
                break
            writer.write(framed)
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # it closed the connection after answering
    finally:
        writer.close()
    return await asyncio.wait_for(answer, 10)


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("PROPFIND", "/calendars/{user}/"), ("PUT", "/calendars/{user}/default/huge.ics")],
)
async def test_a_huge_body_gets_413_without_being_read(
    dav: DavTarget, method: str, path: str, declare: bool
) -> None:
    tracemalloc.start()
    try:
        answer = await _stream_huge(dav, method, path, declare)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert peak < 8 * MB


async def test_outside_the_trusted_networks_only_https_logs_in(
    backend: Backend, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = (tmp_path / "cert.pem", tmp_path / "key.pem")
    cert.private_key_and_cert_chain_pem.write_to_path(str(files[0]))
    cert.private_key_pem.write_to_path(str(files[1]))
    trust = ssl.create_default_context()
    ca.configure_trust(trust)
    user = await backend.new_user()
    async with (
        running_dav(backend, tmp_path, files, plaintext_networks="192.0.2.0/24") as dav,
        httpx.AsyncClient(auth=(user.address, PASSWORD), verify=trust) as http,
    ):
        plain = await http.request(
            "PROPFIND", f"{dav.url}/calendars/{user.address}/", headers={"Depth": "0"}
        )
        secure = await http.request(
            "PROPFIND",
            f"https://127.0.0.1:{dav.tls_port}/calendars/{user.address}/",
            headers={"Depth": "0"},
        )
    assert plain.status_code == 403
    assert b"HTTPS" in plain.content
    assert secure.status_code == 207
    assert f"/calendars/{user.address}/".encode() in secure.content
