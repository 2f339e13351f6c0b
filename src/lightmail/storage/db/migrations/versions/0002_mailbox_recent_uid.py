"""mailboxes.recent_uid: which messages a session may still claim as \\Recent"""

from __future__ import annotations

import sqlalchemy as sa

from lightmail.storage.db.migrations.columns import added_column

revision = "0002"
down_revision = "0001"

upgrade, downgrade = added_column("mailboxes", "recent_uid", sa.BigInteger())
