"""messages.size_crlf: the size POP3 counts, with bare LFs sent as CRLF"""

from __future__ import annotations

import sqlalchemy as sa

from lightmail.storage.db.migrations.columns import added_column

revision = "0004"
down_revision = "0003"

# Messages stored before: LMTP always wrote CRLF, so their size is the count.
upgrade, downgrade = added_column("messages", "size_crlf", sa.BigInteger(), copied_from="size")
