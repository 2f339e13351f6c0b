"""calendars.kind: the DAV collections table also holds address books (CardDAV); every
existing user gets the default address book a new user gets"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    # The new unique key is made before the old one goes: on MariaDB the foreign key
    # on user_id needs an index that starts with it all the time.
    with op.batch_alter_table("calendars") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="calendar")
        )
        batch.create_unique_constraint(
            "uq_calendars_user_id_kind_name", ["user_id", "kind", "name"]
        )
        batch.drop_constraint("uq_calendars_user_id_name", type_="unique")
    op.get_bind().execute(
        sa.text(
            "INSERT INTO calendars (user_id, kind, name, display_name, color, description,"
            " components, sync_token, purged_modseq, created_at)"
            " SELECT id, 'addressbook', 'default', 'Contacts', '', '', 'VCARD', 1, 0, :now"
            " FROM users"
        ),
        {"now": datetime.now(UTC).replace(tzinfo=None)},
    )


def downgrade() -> None:
    # Address books go; their objects are soft-deleted, so the garbage collector
    # removes their blobs as it does a deleted calendar's.
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE calendar_objects SET deleted_at = :now WHERE deleted_at IS NULL"
            " AND calendar_id IN (SELECT id FROM calendars WHERE kind = 'addressbook')"
        ),
        {"now": datetime.now(UTC).replace(tzinfo=None)},
    )
    bind.execute(sa.text("DELETE FROM calendars WHERE kind = 'addressbook'"))
    with op.batch_alter_table("calendars") as batch:
        batch.create_unique_constraint("uq_calendars_user_id_name", ["user_id", "name"])
        batch.drop_constraint("uq_calendars_user_id_kind_name", type_="unique")
        batch.drop_column("kind")
