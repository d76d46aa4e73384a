"""The catalog in a SQLite file of its own (embedded mode), `catalog.db` beside `state.db`.

Its own file rather than tables in the state file, for three reasons:

- Durability. The state file commits with synchronous=NORMAL because replaying the log
  rebuilds whatever an OS crash takes from it; nothing rebuilds the catalog, so its file
  commits with synchronous=FULL, and an acknowledged write is on disk.
- One writer per file. `SqliteFile` groups the writes of one file into shared transactions;
  a bulk import of a thousand items would otherwise ride in (and slow) the fold's commits.
- The courier process reads items while it renders (`SqliteCatalogReader`), on a read-only
  connection to this file, and never opens the state file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from mailpulse.catalog.derive import plan_upsert
from mailpulse.catalog.interface import CatalogUnavailable, ItemKey
from mailpulse.catalog.model import CatalogItem, Upserted, checked_items, encode, stored_item
from mailpulse.store.sql import load_queries
from mailpulse.store.sqlite.worker import SqliteFile
from mailpulse.types import Event

Q = load_queries("mailpulse.catalog", "sqlite.sql")

_decode_event = msgspec.json.Decoder(Event).decode
_CHUNK = 400  # keys a statement: two parameters each, well under SQLite's limit


def _get_many(conn: sqlite3.Connection, keys: Sequence[ItemKey]) -> dict[ItemKey, CatalogItem]:
    found: dict[ItemKey, CatalogItem] = {}
    unique = list(dict.fromkeys(keys))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        rows = conn.execute(
            "SELECT catalog, id, fields, updated_at FROM catalog_items "
            f"WHERE (catalog, id) IN (VALUES {','.join(['(?, ?)'] * len(chunk))})",
            [part for key in chunk for part in key],
        )
        for catalog, item_id, fields, updated_at in rows:
            found[(catalog, item_id)] = stored_item(catalog, item_id, fields, updated_at)
    return found


def _stored(
    conn: sqlite3.Connection, catalog: str, ids: Sequence[str]
) -> dict[str, tuple[bytes, float]]:
    stored: dict[str, tuple[bytes, float]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = conn.execute(
            "SELECT id, fields, updated_at FROM catalog_items "
            f"WHERE catalog = ? AND id IN ({','.join('?' * len(chunk))})",
            [catalog, *chunk],
        )
        stored.update((item_id, (fields, at)) for item_id, fields, at in rows)
    return stored


class SqliteCatalogStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)
        self._db = SqliteFile(path, durable=True, schema=Q["schema"], name="mp-catalog")

    async def open(self) -> None:
        self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def upsert(
        self, catalog: str, items: Sequence[tuple[str, dict[str, Any]]], now: float
    ) -> list[Upserted]:
        checked = checked_items(catalog, items)

        def write(conn: sqlite3.Connection) -> list[Upserted]:
            # Read and write in one transaction: no other writer can come in between.
            before = _stored(conn, catalog, [item_id for item_id, _, _ in checked])
            plan = plan_upsert(catalog, checked, before, now)
            conn.executemany(
                Q["put-item"], [(catalog, item_id, body, at) for item_id, body, at in plan.writes]
            )
            conn.executemany(Q["keep-event"], [(ev.message_id, encode(ev)) for ev in plan.events])
            return plan.results

        return await self._write(write)

    async def get(self, catalog: str, item_id: str) -> CatalogItem | None:
        row = self._read(lambda c: c.execute(Q["get-item"], (catalog, item_id)).fetchone())
        return None if row is None else stored_item(catalog, item_id, *row)

    async def get_many(self, keys: Sequence[ItemKey]) -> dict[ItemKey, CatalogItem]:
        return self._read(lambda c: _get_many(c, keys))

    async def delete(self, catalog: str, item_id: str) -> bool:
        return await self._write(
            lambda c: c.execute(Q["delete-item"], (catalog, item_id)).rowcount > 0
        )

    async def list_items(self, catalog: str, after: str, limit: int) -> list[CatalogItem]:
        rows = self._read(lambda c: c.execute(Q["list-items"], (catalog, after, limit)).fetchall())
        return [stored_item(catalog, *row) for row in rows]

    async def pending_events(self, limit: int) -> list[Event]:
        rows = self._read(lambda c: c.execute(Q["pending-events"], (limit,)).fetchall())
        return [_decode_event(body) for (body,) in rows]

    async def forget_events(self, message_ids: Sequence[str]) -> None:
        if message_ids:
            await self._write(
                lambda c: c.executemany(Q["forget-event"], [(m,) for m in message_ids])
            )

    def _read(self, fn: Any) -> Any:
        try:
            return self._db.read(fn)
        except sqlite3.Error as exc:
            raise CatalogUnavailable(f"{self.path}: {exc}") from exc

    async def _write(self, fn: Any) -> Any:
        try:
            return await self._db.write(fn)
        except (sqlite3.Error, OSError) as exc:
            raise CatalogUnavailable(f"{self.path}: {exc}") from exc


class SqliteCatalogReader:
    """The catalog file read from another process (the courier's): a read-only connection,
    opened on first use, so that a courier started before the file exists still comes up."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def get_many(self, keys: Sequence[ItemKey]) -> dict[ItemKey, CatalogItem]:
        try:
            if self._conn is None:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
                conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout=5000")
                self._conn = conn
            return _get_many(self._conn, keys)
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return {}  # the writer has not created it yet: no items
            raise CatalogUnavailable(f"{self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise CatalogUnavailable(f"{self.path}: {exc}") from exc
