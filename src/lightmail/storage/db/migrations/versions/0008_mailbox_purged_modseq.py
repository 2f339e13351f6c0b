"""mailboxes.purged_modseq: the highest mod-sequence of an expunge no row records any more

QRESYNC (RFC 7162 section 3.2) lists the UIDs expunged since a client's
mod-sequence from the soft-deleted rows; once the garbage collector has purged
some, a client older than this value is told every UID that is not live.
Mailboxes that exist already may have lost such rows before this column
counted them: they start at their HIGHESTMODSEQ, so no client state from before
the upgrade is answered from rows that may be incomplete.
"""

from __future__ import annotations

import sqlalchemy as sa

from lightmail.storage.db.migrations.columns import added_column

revision = "0008"
down_revision = "0007"

upgrade, downgrade = added_column(
    "mailboxes", "purged_modseq", sa.BigInteger(), copied_from="highestmodseq"
)
