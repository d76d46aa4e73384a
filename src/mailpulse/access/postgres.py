"""Keys and the audit log in PostgreSQL (scale-out): tables of the same database as the log
and state (migration 0011), shared by every API node. Each node keeps the keys in memory
(see mailpulse.access.ring) and reloads them when `keys_version` changes."""

from __future__ import annotations

from typing import Any

import asyncpg

from mailpulse.access.audit import AuditEntry
from mailpulse.access.interface import AccessUnavailable
from mailpulse.access.keys import ApiKey
from mailpulse.access.rows import entry_from_row, entry_params, key_from_row, key_params
from mailpulse.store.postgres.pool import UNREACHABLE, PoolHolder
from mailpulse.store.sql import load_queries

Q = load_queries("mailpulse.access", "postgres.sql")


class PostgresAccessStore:
    def __init__(self, dsn: str, *, pool_size: int = 2, timeout: float = 10.0) -> None:
        self._holder = PoolHolder(
            dsn,
            name="mailpulse-access",
            size=pool_size,
            timeout=timeout,
            what="access store",
            closed=AccessUnavailable,
        )

    async def open(self) -> None:
        await self._holder.open()

    async def close(self) -> None:
        await self._holder.close()

    @property
    def _db(self) -> asyncpg.Pool:
        return self._holder.pool

    async def add_key(self, key: ApiKey) -> None:
        await self._call(self._db.execute, Q["add-key"], *key_params(key))

    async def revoke_key(self, key_id: str, at: float) -> ApiKey | None:
        await self._call(self._db.execute, Q["revoke-key"], key_id, at)
        row = await self._call(self._db.fetchrow, Q["get-key"], key_id)
        return None if row is None else key_from_row(row)

    async def keys(self) -> list[ApiKey]:
        return [key_from_row(r) for r in await self._call(self._db.fetch, Q["keys"])]

    async def keys_version(self) -> int:
        return int(await self._call(self._db.fetchval, Q["keys-version"]))

    async def record(self, entry: AuditEntry) -> int:
        return int(await self._call(self._db.fetchval, Q["record"], *entry_params(entry)))

    async def audit(
        self, *, since: float | None, until: float | None, before: int | None, limit: int
    ) -> list[AuditEntry]:
        rows = await self._call(self._db.fetch, Q["audit"], since, until, before, limit)
        return [entry_from_row(r) for r in rows]

    async def _call(self, method: Any, *args: Any) -> Any:
        try:
            return await method(*args)
        except UNREACHABLE as exc:
            raise AccessUnavailable(f"{self._holder.where}: {exc}") from exc
