"""Whether a node's storage answers: the readiness check behind ``/ready``.

Built once by the runtime from the node's database and blob store and handed
to the API, which so reaches storage only through this, the mailstore and
accounts.
"""

from __future__ import annotations

from lightmail.storage.blobs import MESSAGE_PREFIX, BlobStore
from lightmail.storage.db.engine import Database


class StorageHealth:
    """Checks that the database and the blob store answer."""

    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    async def check(self) -> None:
        """Return when both answer; raise what the first that does not raised."""
        await self.db.current_revision()
        pages = self.blobs.list(MESSAGE_PREFIX, page_size=1)
        try:
            await anext(pages, None)
        finally:
            close = getattr(pages, "aclose", None)
            if close is not None:
                await close()
