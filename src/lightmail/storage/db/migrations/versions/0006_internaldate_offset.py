"""messages.internaldate_offset: the zone INTERNALDATE was given in"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    # Minutes east of UTC. Rows stored before kept only the UTC instant: offset 0
    # renders them exactly as before ("... +0000").
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("internaldate_offset", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("internaldate_offset")
