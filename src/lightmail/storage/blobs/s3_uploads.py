"""Incomplete multipart uploads of an S3 bucket, listed and aborted through botocore.

obstore, through which :class:`~lightmail.storage.blobs.s3.S3BlobStore` does
everything else, cannot list them. A sweep is ListMultipartUploads under the
store's prefix, then AbortMultipartUpload for each one initiated before the
cutoff. :meth:`S3BlobStore.sweep_incomplete
<lightmail.storage.blobs.s3.S3BlobStore.sweep_incomplete>` imports this module
the first time it runs: botocore takes 0.13 s to import, which every process
start paid before, S3 or not.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["ERRORS", "UploadSweeper"]

# What a sweep raises when S3 or the network fails it.
ERRORS = (BotoCoreError, ClientError)

_CONFIG = Config(
    s3={"addressing_style": "path"},
    connect_timeout=5,
    read_timeout=30,
    retries={"max_attempts": 2, "mode": "standard"},  # the GC tries again next run
)


class UploadSweeper:
    """Lists and aborts incomplete multipart uploads with a botocore S3 client.

    The client is made on first use and used from worker threads; botocore
    clients are thread-safe. Credentials: the keys given, else botocore's own
    chain (the AWS variables, ``~/.aws`` files, web identity, container and
    instance roles).
    """

    __slots__ = ("_bucket", "_client", "_lock", "_options", "_prefix")

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint: str | None,
        region: str,
        access_key: str | None,
        secret_key: str | None,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._options: dict[str, Any] = {
            "region_name": region,
            "endpoint_url": endpoint,
            "aws_access_key_id": access_key,
            "aws_secret_access_key": secret_key,
            "config": _CONFIG,
        }
        self._client: Any = None
        self._lock = threading.Lock()

    def sweep(self, older_than: datetime, dry_run: bool) -> int:
        client = self._get_client()
        aborted = 0
        pages = client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self._bucket, Prefix=self._prefix
        )
        for page in pages:
            for upload in page.get("Uploads", ()):
                if upload["Initiated"] >= older_than:
                    continue
                if not dry_run:
                    try:
                        client.abort_multipart_upload(
                            Bucket=self._bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                        )
                    except ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                            raise
                        continue  # completed or aborted meanwhile (another node's sweep)
                aborted += 1
        return aborted

    @property
    def opened(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                session = botocore.session.get_session()
                self._client = session.create_client("s3", **self._options)
            return self._client
