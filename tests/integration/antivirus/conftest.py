"""One real clamd for the whole session (it starts in ~0.1 s with our one signature).

Every test runs on the default asyncio loop and on uvloop (what the server runs on).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping

import pytest
import uvloop

from tests.support.clamd import Clamd, find_clamd, running_clamd
from tests.support.require import require


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    """clamd with StreamMaxLength 1M on a unix socket and a loopback port."""
    binary = find_clamd()
    require(
        "clamd", binary is not None, "install Debian's clamav-daemon (scripts/system-packages.sh)"
    )
    with running_clamd(
        tmp_path_factory.mktemp("clamd"), stream_max_length="1M", clamd=binary
    ) as server:
        yield server
