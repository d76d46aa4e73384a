"""The event log in a SQLite file: WAL, synchronous=FULL, group commit.

An append returns only after its transaction is on disk, so an HTTP 2xx means durable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from mailpulse.privacy.scrub import scrub_event
from mailpulse.store.interface import LogRolledBack, LogUnavailable
from mailpulse.store.rows import decode_event, encode, event_at, send_key_of
from mailpulse.store.sql import load_queries
from mailpulse.store.sqlite.worker import SqliteFile, add_column, only_partition, select_in
from mailpulse.types import Event

Q = load_queries("mailpulse.store.sqlite", "log.sql")


def _scrub_rows(conn: sqlite3.Connection, select: str, values: Sequence[object]) -> int:
    """Rewrite the events `select` + ` IN (values)` finds (their offset and body), in chunks
    (SQLite binds at most 32,766 parameters to a statement)."""
    changed = []
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        for offset, body in conn.execute(f"{select} IN ({','.join('?' * len(chunk))})", chunk):
            scrubbed = encode(scrub_event(decode_event(body)))
            if scrubbed != body:
                changed.append((scrubbed, offset))
    conn.executemany(Q["rewrite-body"], changed)
    return len(changed)


def _index_send_keys(conn: sqlite3.Connection) -> None:
    add_column(conn, "events", "send_key", Q["add-send-key"])  # older events stay unindexed
    conn.execute(Q["send-key-index"])


def _forget_before(conn: sqlite3.Connection, through: int, before: float, limit: int) -> int:
    last = None
    for offset, received_at in conn.execute(Q["oldest"], (through, limit)):
        if received_at >= before:
            break
        last = offset
    return 0 if last is None else conn.execute(Q["forget-through"], (last,)).rowcount


class SqliteEventLog:
    partitions = 1

    def __init__(self, path: Path) -> None:
        self._db = SqliteFile(
            path, durable=True, schema=Q["schema"], name="mp-log", on_commit=self._committed
        )
        # Offsets only ever grow, even past a failed commit: an offset handed out early (see
        # `append`'s on_written) never comes to mean another event.
        self._next_offset = 1
        self._group: list[int] = []
        self._durable_offset = 0
        self._lost: list[tuple[int, int]] = []
        self._changed = asyncio.Event()

    async def open(self) -> None:
        self._db.open()
        await self._db.write(_index_send_keys)
        head = self._db.read(lambda c: c.execute(Q["head"]).fetchone()[0])
        self._next_offset = head + 1
        self._durable_offset = head

    def _committed(self, ok: bool) -> None:
        if self._group:
            if ok:
                self._durable_offset = max(self._durable_offset, max(self._group))
            else:
                self._lost.append((min(self._group), max(self._group)))
            self._group = []
        self._changed.set()
        self._changed = asyncio.Event()

    def lost(self, offset: int, partition: int = 0) -> bool:
        """Whether an offset handed out early belongs to a write that never committed."""
        only_partition(partition)
        return any(first <= offset <= last for first, last in self._lost)

    async def wait_durable(self, first: int, last: int, partition: int = 0) -> None:
        """Return once offsets first..last are on disk; LogRolledBack if any never will be."""
        only_partition(partition)
        while True:
            if any(a <= last and first <= b for a, b in self._lost):
                raise LogRolledBack(f"offsets {first}..{last} were not committed")
            if self._durable_offset >= last:
                return
            await self._changed.wait()

    async def close(self) -> None:
        await self._db.close()

    async def append(
        self,
        events: Sequence[Event],
        on_written: Callable[[list[Event]], None] | None = None,
    ) -> list[Event]:
        def write(conn: sqlite3.Connection) -> list[Event]:
            # Set-wise, not row by row: one look-up for the batch's ids, then two bulk inserts.
            seen = select_in(
                conn,
                "SELECT message_id FROM seen_message_ids WHERE message_id",
                [ev.message_id for ev in events],
            )
            fresh: list[Event] = []
            for ev in events:
                if ev.message_id not in seen:
                    seen.add(ev.message_id)
                    fresh.append(ev)
            if not fresh:
                return fresh
            for n, ev in enumerate(fresh, start=self._next_offset):
                ev.offset = n
            self._next_offset += len(fresh)
            conn.executemany(
                Q["remember-message-id"], [(ev.message_id, ev.received_at) for ev in fresh]
            )
            conn.executemany(
                Q["insert-event"],
                [
                    (
                        ev.offset,
                        ev.message_id,
                        ev.contact_key,
                        ev.type,
                        ev.received_at,
                        encode(ev),
                        send_key_of(ev),
                    )
                    for ev in fresh
                ],
            )
            self._group.extend((fresh[0].offset, fresh[-1].offset))
            return fresh

        try:
            return await self._db.write(write, on_written)
        except (sqlite3.Error, OSError) as exc:
            raise LogUnavailable(f"{self._db.path}: {exc}") from exc

    async def read(self, after: int, limit: int, partition: int = 0) -> list[Event]:
        only_partition(partition)
        rows = self._db.read(lambda c: c.execute(Q["read-after"], (after, limit)).fetchall())
        return [event_at(body, off) for off, body in rows]

    async def head(self, partition: int = 0) -> int:
        only_partition(partition)
        return self._db.read(lambda c: c.execute(Q["head"]).fetchone()[0])

    async def for_contact(self, keys: Sequence[str], limit: int) -> list[Event]:
        marks = ",".join("?" * len(keys))
        sql = (
            f'SELECT "offset", body FROM events WHERE contact_key IN ({marks}) '
            f'ORDER BY "offset" DESC LIMIT ?'
        )
        rows = self._db.read(lambda c: c.execute(sql, (*keys, limit)).fetchall())
        return [event_at(body, off) for off, body in reversed(rows)]

    async def for_send(self, send_key: str, limit: int) -> list[Event]:
        rows = self._db.read(lambda c: c.execute(Q["for-send"], (send_key, limit)).fetchall())
        return [event_at(body, off) for off, body in rows]

    async def forget_message_ids(self, before: float) -> int:
        return await self._db.write(
            lambda c: c.execute(Q["forget-message-ids"], (before,)).rowcount
        )

    async def scrub_contact(self, keys: Sequence[str]) -> int:
        select = 'SELECT "offset", body FROM events WHERE contact_key'
        return await self._scrub(select, list(keys))

    async def scrub_events(self, positions: Sequence[tuple[int, int]]) -> int:
        for partition, _ in positions:
            only_partition(partition)
        select = 'SELECT "offset", body FROM events WHERE "offset"'
        return await self._scrub(select, [offset for _, offset in positions])

    async def _scrub(self, select: str, values: Sequence[object]) -> int:
        changed = await self._db.write(lambda c: _scrub_rows(c, select, values))
        if changed:
            # The bodies as they were are still in the WAL: gone at the next checkpoint.
            self._db.truncate_wal_soon()
        return changed

    async def forget_before(self, partition: int, through: int, before: float, limit: int) -> int:
        only_partition(partition)
        # Never the newest event: the next offset is counted on from it at the next start.
        through = min(through, self._durable_offset - 1)
        return await self._db.write(lambda c: _forget_before(c, through, before, limit))
