"""The initial schema: users and their domains, aliases, API tokens, mail and blobs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None

# The autoincrement key type: BIGINT, but INTEGER on SQLite (only INTEGER PRIMARY KEY
# is its rowid). This migration is a frozen snapshot: it imports no application code.
_ID_TYPE = sa.BigInteger().with_variant(sa.INTEGER(), "sqlite")
# TEXT and BLOB hold 64 KiB on MariaDB: these columns take LONGTEXT and LONGBLOB there.
_LONG_TEXT = (
    sa.Text().with_variant(mysql.LONGTEXT(), "mariadb").with_variant(mysql.LONGTEXT(), "mysql")
)
_LONG_BLOB = (
    sa.LargeBinary()
    .with_variant(mysql.LONGBLOB(), "mariadb")
    .with_variant(mysql.LONGBLOB(), "mysql")
)
_MYSQL: dict[str, Any] = {
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
    "mysql_engine": "InnoDB",
}


def _id() -> sa.Column[int]:
    return sa.Column("id", _ID_TYPE, autoincrement=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        _id(),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
        **_MYSQL,
    )
    op.create_table(
        "domains",
        _id(),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name=op.f("uq_domains_name")),
        **_MYSQL,
    )
    op.create_table(
        "object_keys",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
        **_MYSQL,
    )
    op.create_table(
        "messages",
        _id(),
        sa.Column("mailbox_id", _ID_TYPE, nullable=False),
        sa.Column("user_id", _ID_TYPE, nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("modseq", sa.BigInteger(), nullable=False),
        sa.Column("object_key", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("internaldate", sa.DateTime(), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("keywords", sa.Text(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(), nullable=True),
        sa.Column(
            "header",
            _LONG_BLOB,
            nullable=False,
        ),
        sa.Column(
            "envelope",
            _LONG_TEXT,
            nullable=False,
        ),
        sa.Column(
            "bodystructure",
            _LONG_TEXT,
            nullable=False,
        ),
        sa.Column("sent_date", sa.DateTime(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("from_addr", sa.Text(), nullable=False),
        sa.Column("to_addr", sa.Text(), nullable=False),
        sa.Column("cc_addr", sa.Text(), nullable=False),
        sa.Column("bcc_addr", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_key"], ["object_keys.key"], name=op.f("fk_messages_object_key_object_keys")
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("mailbox_id", "uid", name=op.f("uq_messages_mailbox_id_uid")),
        **_MYSQL,
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_deleted_at"), ["deleted_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_object_key"), ["object_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_messages_user_id_deleted_at"), ["user_id", "deleted_at"], unique=False
        )

    op.create_table(
        "users",
        _id(),
        sa.Column("domain_id", _ID_TYPE, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"], name=op.f("fk_users_domain_id_domains")
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("address", name=op.f("uq_users_address")),
        **_MYSQL,
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_domain_id"), ["domain_id"], unique=False)

    op.create_table(
        "aliases",
        _id(),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("user_id", _ID_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_aliases_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("address", "user_id", name=op.f("uq_aliases_address_user_id")),
        **_MYSQL,
    )
    with op.batch_alter_table("aliases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aliases_user_id"), ["user_id"], unique=False)

    op.create_table(
        "mailboxes",
        _id(),
        sa.Column("user_id", _ID_TYPE, nullable=False),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uidnext", sa.BigInteger(), nullable=False),
        sa.Column("highestmodseq", sa.BigInteger(), nullable=False),
        sa.Column("special_use", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("name_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_mailboxes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "name_hash", name=op.f("uq_mailboxes_user_id_name_hash")),
        **_MYSQL,
    )
    op.create_table(
        "subscriptions",
        _id(),
        sa.Column("user_id", _ID_TYPE, nullable=False),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.Column("name_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "user_id", "name_hash", name=op.f("uq_subscriptions_user_id_name_hash")
        ),
        **_MYSQL,
    )


def downgrade() -> None:
    op.drop_table("subscriptions")
    op.drop_table("mailboxes")
    with op.batch_alter_table("aliases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aliases_user_id"))

    op.drop_table("aliases")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_domain_id"))

    op.drop_table("users")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_user_id_deleted_at"))
        batch_op.drop_index(batch_op.f("ix_messages_object_key"))
        batch_op.drop_index(batch_op.f("ix_messages_deleted_at"))

    op.drop_table("messages")
    op.drop_table("object_keys")
    op.drop_table("domains")
    op.drop_table("api_tokens")
