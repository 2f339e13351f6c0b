"""messages.size_crlf: the size POP3 counts, with bare LFs sent as CRLF"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("size_crlf", sa.BigInteger(), server_default="0", nullable=False)
        )
    # Messages stored before: LMTP always wrote CRLF, so their size is the count.
    op.execute("UPDATE messages SET size_crlf = size")


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("size_crlf")
