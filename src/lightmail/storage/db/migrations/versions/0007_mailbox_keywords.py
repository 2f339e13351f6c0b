"""mailboxes.keywords: the keyword set of each mailbox, counted against its limit"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0007"
down_revision = "0006"

_LONG_TEXT = (
    sa.Text().with_variant(mysql.LONGTEXT(), "mariadb").with_variant(mysql.LONGTEXT(), "mysql")
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # SQLite adds a NOT NULL column in place when it has a default.
        op.add_column(
            "mailboxes", sa.Column("keywords", _LONG_TEXT, nullable=False, server_default="")
        )
    else:
        # MySQL allows no literal default on a TEXT column: add, fill, then forbid NULL.
        op.add_column("mailboxes", sa.Column("keywords", _LONG_TEXT, nullable=True))
        op.execute("UPDATE mailboxes SET keywords = ''")
        op.alter_column("mailboxes", "keywords", existing_type=_LONG_TEXT, nullable=False)
    # Mailboxes with mail already: the keywords their live messages have.
    defined: dict[int, set[str]] = defaultdict(set)
    rows = bind.execute(
        sa.text(
            "SELECT DISTINCT mailbox_id, keywords FROM messages"
            " WHERE deleted_at IS NULL AND keywords <> ''"
        )
    )
    for mailbox_id, keywords in rows:
        defined[mailbox_id].update(keywords.split())
    for mailbox_id, keywords in defined.items():
        bind.execute(
            sa.text("UPDATE mailboxes SET keywords = :keywords WHERE id = :id"),
            {"keywords": " ".join(sorted(keywords)), "id": mailbox_id},
        )


def downgrade() -> None:
    # SQLite (3.35 and later) drops a column in place, keeping AUTOINCREMENT.
    op.drop_column("mailboxes", "keywords")
