"""The catalog in PostgreSQL (scale-out): tables of the same database as the log and state
(migration 0006), shared by every API node and read by every worker's courier.

An upsert reads the items as they were and writes them in one transaction, holding an
advisory lock per item from the read to the commit: two API nodes updating one product take
turns, so each derives its events from the other's result, never from the same old price.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from mailpulse.catalog.derive import plan_upsert
from mailpulse.catalog.interface import CatalogUnavailable, ItemKey
from mailpulse.catalog.model import CatalogItem, Upserted, checked_items, encode, stored_item
from mailpulse.store.postgres.pool import UNREACHABLE, PoolHolder
from mailpulse.store.sql import load_queries
from mailpulse.types import Event

Q = load_queries("mailpulse.catalog", "postgres.sql")

# The first key of the catalog's advisory locks ("mc"); the partition leases use "mp".
_LOCK_SPACE = 0x6D63

_decode_event = msgspec.json.Decoder(Event).decode


def _lock_key(catalog: str, item_id: str) -> int:
    """32 bits of the item's name: two items may share a key, and then merely take turns."""
    digest = hashlib.blake2b(f"{catalog}\0{item_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresCatalogStore:
    def __init__(self, dsn: str, *, pool_size: int = 4, timeout: float = 10.0) -> None:
        self.location = dsn
        self._holder = PoolHolder(
            dsn,
            name="mailpulse-catalog",
            size=pool_size,
            timeout=timeout,
            what="catalog",
            closed=CatalogUnavailable,
        )
        self._where = self._holder.where

    async def open(self) -> None:
        await self._holder.open()

    async def close(self) -> None:
        await self._holder.close()

    @property
    def _db(self) -> asyncpg.Pool:
        return self._holder.pool

    async def upsert(
        self, catalog: str, items: Sequence[tuple[str, dict[str, Any]]], now: float
    ) -> list[Upserted]:
        checked = checked_items(catalog, items)
        if not checked:
            return []
        ids = [item_id for item_id, _, _ in checked]
        locks = sorted({_lock_key(catalog, item_id) for item_id in ids})
        try:
            async with self._db.acquire() as conn, conn.transaction():
                await conn.execute(Q["lock-items"], _LOCK_SPACE, locks)
                rows = await conn.fetch(Q["stored-items"], catalog, ids)
                before = {item_id: (fields, at) for item_id, fields, at in rows}
                plan = plan_upsert(catalog, checked, before, now)
                if plan.writes:
                    await conn.execute(
                        Q["put-items"],
                        catalog,
                        [item_id for item_id, _, _ in plan.writes],
                        [body for _, body, _ in plan.writes],
                        [at for _, _, at in plan.writes],
                    )
                if plan.events:
                    await conn.execute(
                        Q["keep-events"],
                        [ev.message_id for ev in plan.events],
                        [encode(ev) for ev in plan.events],
                    )
        except UNREACHABLE as exc:
            raise CatalogUnavailable(f"{self._where}: {exc}") from exc
        return plan.results

    async def get(self, catalog: str, item_id: str) -> CatalogItem | None:
        row = await self._call(self._db.fetchrow, Q["get-item"], catalog, item_id)
        return None if row is None else stored_item(catalog, item_id, *row)

    async def get_many(self, keys: Sequence[ItemKey]) -> dict[ItemKey, CatalogItem]:
        if not keys:
            return {}
        unique = list(dict.fromkeys(keys))
        rows = await self._call(
            self._db.fetch,
            Q["get-many"],
            [catalog for catalog, _ in unique],
            [item_id for _, item_id in unique],
        )
        return {(row[0], row[1]): stored_item(*row) for row in rows}

    async def delete(self, catalog: str, item_id: str) -> bool:
        status = await self._call(self._db.execute, Q["delete-item"], catalog, item_id)
        return status != "DELETE 0"

    async def list_items(self, catalog: str, after: str, limit: int) -> list[CatalogItem]:
        rows = await self._call(self._db.fetch, Q["list-items"], catalog, after, limit)
        return [stored_item(catalog, *row) for row in rows]

    async def pending_events(self, limit: int) -> list[Event]:
        rows = await self._call(self._db.fetch, Q["pending-events"], limit)
        return [_decode_event(row[0]) for row in rows]

    async def forget_events(self, message_ids: Sequence[str]) -> None:
        if message_ids:
            await self._call(self._db.execute, Q["forget-events"], list(message_ids))

    async def _call(self, method: Any, *args: Any) -> Any:
        try:
            return await method(*args)
        except UNREACHABLE as exc:
            raise CatalogUnavailable(f"{self._where}: {exc}") from exc


class PostgresCatalogReader:
    """The catalog read from another process (the courier's): connects on first use, and
    again after a failed attempt, so that a database down when the courier starts only defers
    the messages that look items up until it is back."""

    def __init__(self, dsn: str) -> None:
        self._store = PostgresCatalogStore(dsn, pool_size=2)
        self._opened = False
        # Renders ask at once; one of them opens the pool, the others wait for it.
        self._opening = asyncio.Lock()

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self._store.close()

    async def get_many(self, keys: Sequence[ItemKey]) -> dict[ItemKey, CatalogItem]:
        async with self._opening:
            if not self._opened:
                try:
                    await self._store.open()
                except UNREACHABLE as exc:
                    raise CatalogUnavailable(f"{self._store._where}: {exc}") from exc
                self._opened = True
        return await self._store.get_many(keys)
