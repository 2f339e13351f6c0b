"""calendars and calendar_objects: CalDAV collections, their .ics objects in the blob store"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

revision = "0011"
down_revision = "0010"

_ID = sa.BigInteger().with_variant(sqlite.INTEGER(), "sqlite")
_TIME = sa.DateTime(timezone=False)
_MYSQL: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


def upgrade() -> None:
    op.create_table(
        "calendars",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id",
            _ID,
            sa.ForeignKey("users.id", name="fk_calendars_user_id_users", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("color", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("components", sa.String(64), nullable=False),
        sa.Column("sync_token", sa.BigInteger(), nullable=False),
        sa.Column("purged_modseq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", _TIME, nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_calendars_user_id_name"),
        sqlite_autoincrement=True,
        **_MYSQL,
    )
    op.create_table(
        "calendar_objects",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("calendar_id", _ID, nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("uid", sa.String(255), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column(
            "object_key",
            sa.String(64),
            sa.ForeignKey("object_keys.key", name="fk_calendar_objects_object_key_object_keys"),
            nullable=False,
        ),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("component", sa.String(16), nullable=False),
        sa.Column("first_start", _TIME, nullable=True),
        sa.Column("last_end", _TIME, nullable=True),
        sa.Column("recurring", sa.Boolean(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", _TIME, nullable=True),
        sa.Column("purge_claimed_until", _TIME, nullable=True),
        sqlite_autoincrement=True,
        **_MYSQL,
    )
    for columns in (
        ("calendar_id", "name"),
        ("calendar_id", "modseq"),
        ("calendar_id", "uid"),
        ("object_key",),
        ("deleted_at",),
        ("user_id", "deleted_at"),
    ):
        op.create_index(f"ix_calendar_objects_{'_'.join(columns)}", "calendar_objects", columns)


def downgrade() -> None:
    op.drop_table("calendar_objects")
    op.drop_table("calendars")
