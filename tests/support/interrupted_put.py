"""A blob put that a test kills with SIGKILL halfway, as a crash during a big APPEND.

Run as ``python -m tests.support.interrupted_put SPEC`` where SPEC is the JSON of
:func:`spec_argument`. It streams a 20 MiB blob into the store, prints ``ready``
once 12 MiB have been handed over (on S3 the multipart upload is then under way),
and waits there to be killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lightmail.storage.blobs import BlobStore, FileSystemBlobStore, S3BlobStore, new_blob_key

MiB = 1024 * 1024
TOTAL = 20 * MiB
READY_AFTER = 12 * MiB


def spec_argument(spec: dict[str, Any]) -> str:
    """The command-line form of a blob spec of ``tests.conftest.open_blobs``."""
    if "root" in spec:
        return json.dumps({"root": str(spec["root"])})
    s3 = spec["s3"]
    return json.dumps(
        {
            "bucket": s3.bucket,
            "prefix": spec["prefix"],
            "endpoint": s3.endpoint,
            "region": s3.region,
            "access_key": s3.access_key,
            "secret_key": s3.secret_key,
        }
    )


def _open(spec: dict[str, str]) -> BlobStore:
    if "root" in spec:
        return FileSystemBlobStore(Path(spec["root"]))
    return S3BlobStore(
        spec["bucket"],
        spec["prefix"],
        endpoint=spec["endpoint"],
        region=spec["region"],
        access_key=spec["access_key"],
        secret_key=spec["secret_key"],
    )


async def _source() -> AsyncIterator[bytes]:
    sent = 0
    while sent < TOTAL:
        yield b"x" * MiB
        sent += MiB
        if sent == READY_AFTER:
            print("ready", flush=True)
            await asyncio.sleep(3600)  # until the test kills us


async def _main(spec: dict[str, str]) -> None:
    store = _open(spec)
    await store.put(new_blob_key(), _source())


if __name__ == "__main__":
    asyncio.run(_main(json.loads(sys.argv[1])))
