"""The shape of a migration that adds one column to a table, for the revisions in ``versions/``.

Alembic's batch mode lets SQLite add and drop the column too (it rebuilds the
table where it must).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op


def added_column(
    table: str,
    name: str,
    type_: sa.types.TypeEngine[Any],
    *,
    server_default: str = "0",
    copied_from: str | None = None,
) -> tuple[Callable[[], None], Callable[[], None]]:
    """The ``upgrade`` and ``downgrade`` of a revision that adds ``table.name``, NOT NULL.

    Rows that exist get ``server_default``, or the value of their column
    ``copied_from`` when given.
    """

    def upgrade() -> None:
        with op.batch_alter_table(table, schema=None) as batch_op:
            # A new Column each run: a column belongs to the one table it is added to.
            batch_op.add_column(
                sa.Column(name, type_, server_default=server_default, nullable=False)
            )
        if copied_from is not None:
            op.execute(f"UPDATE {table} SET {name} = {copied_from}")  # noqa: S608 (our names)

    def downgrade() -> None:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column(name)

    return upgrade, downgrade
