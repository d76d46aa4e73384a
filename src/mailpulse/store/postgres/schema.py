"""Schema migrations: numbered files `migrations/NNNN_what.sql`, applied in order, once.

Every process that opens a store migrates first, so several processes starting at once would
race; they queue on one advisory lock instead, held for the one transaction that applies
everything missing, and whoever comes later finds nothing left to do.
"""

from __future__ import annotations

import re
from importlib.resources import files

import asyncpg

# Any constant works as long as nothing else in the database takes the same advisory lock:
# "mailpuls" in ASCII.
MIGRATION_LOCK = 0x6D61696C70756C73

_FILE = re.compile(r"^(\d{4})_\w+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def available() -> list[tuple[str, str]]:
    """(version, SQL) of every migration shipped, in order."""
    found: dict[str, str] = {}
    for entry in files("mailpulse.store.postgres").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match is None:
            continue
        version = match.group(1)
        if version in found:
            raise RuntimeError(f"two migrations are numbered {version}")
        found[version] = entry.read_text(encoding="utf-8")
    return sorted(found.items())


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply what is missing in one transaction; returns the versions applied now."""
    applied: list[str] = []
    async with conn.transaction():
        # First, before even the bookkeeping table: two concurrent CREATE TABLE IF NOT EXISTS
        # can both try to create it.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(_CREATE_TABLE)
        done = {row[0] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in available():
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    return applied


async def migrate(dsn: str) -> list[str]:
    """Bring the database at `dsn` up to date; returns the versions applied now (empty when it
    already was)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()
