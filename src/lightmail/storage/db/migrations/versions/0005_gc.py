"""Garbage collection: the purge claim on messages, the gc_runs log, no id reuse"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "0005"
down_revision = "0004"

_ID = sa.BigInteger().with_variant(sqlite.INTEGER(), "sqlite")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite reuses the highest rowid once its row is deleted: a new mailbox
        # got a deleted one's id, whose soft-deleted messages still held its
        # UIDs. AUTOINCREMENT (a table rebuild on SQLite) stops the reuse.
        for table in ("mailboxes", "messages", "quarantine"):
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purge_claimed_until", sa.DateTime(timezone=False), nullable=True)
        )
    op.create_table(
        "gc_runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("node", sa.String(255), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=False), nullable=False),
        sa.Column("messages_purged", sa.BigInteger(), nullable=False),
        sa.Column("blobs_deleted", sa.BigInteger(), nullable=False),
        sa.Column("bytes_freed", sa.BigInteger(), nullable=False),
        sa.Column("orphans_deleted", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )


def downgrade() -> None:
    op.drop_table("gc_runs")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("purge_claimed_until")
