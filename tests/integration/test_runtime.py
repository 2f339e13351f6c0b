"""The runtime builds each part of a node once and hands that one to every service."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lightmail.api.server import ApiServer
from lightmail.config import load_settings
from lightmail.imap.server import ImapServer
from lightmail.lmtp.server import LmtpServer
from lightmail.runtime import build_services, open_node
from tests.support.serving import storage_env


async def test_one_clamd_client_and_one_of_each_part_for_every_service(
    storage: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    environ = {
        "LIGHTMAIL_SERVER_DATA_DIR": str(tmp_path / "data"),
        "LIGHTMAIL_IMAP_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_LMTP_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_API_LISTEN": "127.0.0.1:0",
        "LIGHTMAIL_POP3_LISTEN": "",
        "LIGHTMAIL_DAV_LISTEN": "",
        "LIGHTMAIL_GC_ENABLED": "false",
        "LIGHTMAIL_ANTIVIRUS_MODE": "reject",
        "LIGHTMAIL_ANTIVIRUS_SCAN_APPEND": "true",
        **storage_env(*storage),
    }
    settings = load_settings(None, environ)
    async with open_node(settings) as node:
        assert node.scanner is not None
        services = build_services(node)
        assert [service.name for service in services] == ["lmtp", "imap", "api"]
        lmtp, imap, api = services
        assert isinstance(lmtp, LmtpServer)
        assert isinstance(imap, ImapServer)
        assert isinstance(api, ApiServer)
        assert lmtp.context.scanner is imap.context.scanner is api.context.scanner is node.scanner
        assert lmtp.context.store is imap.context.store is api.context.store is node.store
        assert imap.context.accounts is api.context.accounts is node.accounts
        assert api.context.tokens is node.tokens
        assert api.context.gc is node.gc
        assert api.context.health is node.health
        await api.context.health.check()  # the node's database and blob store answer

        # Without scan_append only LMTP scans, still with the same client.
        antivirus = dataclasses.replace(settings.antivirus, scan_append=False)
        no_append = dataclasses.replace(settings, antivirus=antivirus)
        lmtp, imap, api = build_services(dataclasses.replace(node, settings=no_append))
        assert isinstance(lmtp, LmtpServer)
        assert isinstance(imap, ImapServer)
        assert isinstance(api, ApiServer)
        assert lmtp.context.scanner is node.scanner
        assert imap.context.scanner is None
        assert api.context.scanner is None
