"""messages: the SORT and THREAD keys (RFC 5256, RFC 5957), filled from the cached parse

Rows stored before get their keys from their cached ENVELOPE and header block,
with the code deliveries use (``mime/sorting.py::sort_keys``): no blob is read.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from lightmail.mailstore.mime.headers import header_fields
from lightmail.mailstore.mime.sorting import sort_keys
from lightmail.mailstore.mime.types import Envelope
from lightmail.mailstore.rows import SORT_KEY_COLUMNS, sort_key_values

revision = "0010"
down_revision = "0009"

_LONG_TEXT = (
    sa.Text().with_variant(mysql.LONGTEXT(), "mariadb").with_variant(mysql.LONGTEXT(), "mysql")
)
_BATCH = 500


def _type(name: str) -> sa.types.TypeEngine[Any]:
    return sa.Boolean() if name == "subject_reply" else _LONG_TEXT


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    for name in SORT_KEY_COLUMNS:
        # SQLite adds a NOT NULL column in place when it has a default; MySQL allows
        # no literal default on a TEXT column: add, fill, then forbid NULL.
        default = ("0" if name == "subject_reply" else "") if sqlite else None
        op.add_column(
            "messages", sa.Column(name, _type(name), nullable=not sqlite, server_default=default)
        )
    select = sa.text(
        "SELECT id, header, envelope FROM messages WHERE id > :after ORDER BY id LIMIT :limit"
    )
    messages = sa.table("messages", sa.column("id"), *(sa.column(n) for n in SORT_KEY_COLUMNS))
    update = (
        sa.update(messages)
        .where(messages.c.id == sa.bindparam("row_id"))
        .values({name: sa.bindparam(name) for name in SORT_KEY_COLUMNS})
    )
    after = 0
    while rows := bind.execute(select, {"after": after, "limit": _BATCH}).all():
        bind.execute(
            update,
            [
                {
                    **sort_key_values(
                        sort_keys(Envelope.from_json(json.loads(envelope)), header_fields(header))
                    ),
                    "row_id": row_id,
                }
                for row_id, header, envelope in rows
            ],
        )
        after = rows[-1][0]
    if not sqlite:  # one ALTER: each would copy the table
        op.execute(
            "ALTER TABLE messages "
            + ", ".join(
                f"MODIFY {name} {'BOOL' if name == 'subject_reply' else 'LONGTEXT'} NOT NULL"
                for name in SORT_KEY_COLUMNS
            )
        )


def downgrade() -> None:
    # SQLite (3.35 and later) drops a column in place, keeping AUTOINCREMENT.
    for name in reversed(SORT_KEY_COLUMNS):
        op.drop_column("messages", name)
