"""gc_leases: which node holds a cluster-wide GC task (the orphan sweep) until when"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    leases = op.create_table(
        "gc_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("held_until", sa.DateTime(timezone=False), nullable=False),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    # The row exists from the start, so that claiming it is one conditional UPDATE.
    op.bulk_insert(
        leases, [{"name": "sweep", "holder": "", "held_until": datetime.datetime(1970, 1, 1)}]
    )


def downgrade() -> None:
    op.drop_table("gc_leases")
