"""An index on messages (mailbox_id, modseq): what changed since a mod-sequence

A selected IMAP session that hears of a change reads only the messages changed
or expunged since the mod-sequence its view is current at (and CHANGEDSINCE,
VANISHED and SELECT's QRESYNC ask the same), instead of the whole mailbox.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_index("ix_messages_mailbox_id_modseq", "messages", ["mailbox_id", "modseq"])


def downgrade() -> None:
    op.drop_index("ix_messages_mailbox_id_modseq", table_name="messages")
