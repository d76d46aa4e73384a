"""Keys and the audit log in a SQLite file of their own (embedded mode), `access.db` beside
`state.db`: like the catalog's file (see mailpulse.catalog.sqlite), it commits with
synchronous=FULL because nothing rebuilds it, and its rare writes stay out of the fold's
group commits."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mailpulse.access.audit import AuditEntry
from mailpulse.access.interface import AccessUnavailable
from mailpulse.access.keys import ApiKey
from mailpulse.access.rows import entry_from_row, entry_params, key_from_row, key_params
from mailpulse.store.sql import load_queries
from mailpulse.store.sqlite.worker import SqliteFile

Q = load_queries("mailpulse.access", "sqlite.sql")


def _revoke(conn: sqlite3.Connection, key_id: str, at: float) -> ApiKey | None:
    conn.execute(Q["revoke-key"], (at, key_id))
    row = conn.execute(f"{Q['key-columns']} WHERE id = ?", (key_id,)).fetchone()
    return None if row is None else key_from_row(row)


class SqliteAccessStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = SqliteFile(path, durable=True, schema=Q["schema"], name="mp-access")

    async def open(self) -> None:
        self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def add_key(self, key: ApiKey) -> None:
        try:
            await self._db.write(lambda c: c.execute(Q["add-key"], key_params(key)))
        except sqlite3.Error as exc:
            raise AccessUnavailable(f"{self.path}: {exc}") from exc

    async def revoke_key(self, key_id: str, at: float) -> ApiKey | None:
        try:
            return await self._db.write(lambda c: _revoke(c, key_id, at))
        except sqlite3.Error as exc:
            raise AccessUnavailable(f"{self.path}: {exc}") from exc

    async def keys(self) -> list[ApiKey]:
        query = f"{Q['key-columns']} ORDER BY created_at, id"
        return [key_from_row(r) for r in self._db.read(lambda c: c.execute(query).fetchall())]

    async def keys_version(self) -> int:
        return int(self._db.read(lambda c: c.execute(Q["keys-version"]).fetchone()[0]))

    async def record(self, entry: AuditEntry) -> int:
        params = entry_params(entry)
        try:
            return await self._db.write(lambda c: c.execute(Q["record"], params).fetchone()[0])
        except sqlite3.Error as exc:
            raise AccessUnavailable(f"{self.path}: {exc}") from exc

    async def audit(
        self, *, since: float | None, until: float | None, before: int | None, limit: int
    ) -> list[AuditEntry]:
        params = (since, until, before, limit)
        rows = self._db.read(lambda c: c.execute(Q["audit"], params).fetchall())
        return [entry_from_row(r) for r in rows]
