"""The MariaDB the tests and benchmarks use: 127.0.0.1:3306, root, database ``test``."""

from __future__ import annotations

import socket

from sqlalchemy import text

from lightmail.storage.db.engine import Database

MARIADB_URL = "mysql+asyncmy://root@127.0.0.1:3306/test"


def mariadb_listening(host: str = "127.0.0.1", port: int = 3306) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


async def create_database(name: str, url: str = MARIADB_URL) -> str:
    """Create an empty database next to ``test``; return its URL."""
    db = Database(url)
    try:
        async with db.write() as conn:
            await conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        await db.close()
    return url.rsplit("/", 1)[0] + "/" + name


async def drop_database(name: str, url: str = MARIADB_URL) -> None:
    db = Database(url)
    try:
        async with db.write() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    finally:
        await db.close()


async def recreate_schema(url: str = MARIADB_URL) -> None:
    """Drop every table of the database and migrate it from scratch."""
    db = Database(url)
    try:
        async with db.write() as conn:
            tables = [row[0] for row in await conn.execute(text("SHOW TABLES"))]
            await conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
            for table in tables:
                await conn.execute(text(f"DROP TABLE `{table}`"))
            await conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
        await db.upgrade()
    finally:
        await db.close()
