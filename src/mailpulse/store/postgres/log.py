"""The event log in PostgreSQL (scale-out): partitioned, deduplicated across processes, group
commit.

Several API nodes append to one log. Each partition numbers its events from 1 by advancing its
head row inside the appending transaction: the row lock makes writers of a partition take turns
between their UPDATE and their COMMIT, so offsets are gap-free in commit order and a reader that
has seen offset n of a partition has seen everything before it. A message id is claimed in
`seen_message_ids` in the same transaction, so a repeat is dropped whichever node it reaches.

An append returns after its COMMIT (synchronous_commit on), and PostgreSQL offers no earlier
point at which an event is known to be written; `on_written` therefore runs after the commit,
every offset handed out is durable, `wait_durable` has nothing to wait for and nothing is ever
`lost`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from mailpulse.bus.interface import partition_of
from mailpulse.privacy.scrub import scrub_event
from mailpulse.store.interface import LogUnavailable
from mailpulse.store.postgres.pool import UNREACHABLE, close_pool, describe, open_pool
from mailpulse.store.rows import decode_event, encode, event_at, send_key_of
from mailpulse.store.sql import load_queries
from mailpulse.types import Event

Q = load_queries("mailpulse.store.postgres", "log.sql")

_Outcome = list[Event] | Exception


@dataclass(slots=True)
class _Append:
    events: Sequence[Event]
    future: asyncio.Future[list[Event]]
    on_written: Callable[[list[Event]], None] | None


async def _append_calls(
    conn: asyncpg.Connection, calls: list[Sequence[Event]], partitions: int
) -> list[list[Event]]:
    """Write several appends in the caller's transaction; returns each one's fresh events.

    A repeat within the calls counts as seen: the first occurrence is the one written."""
    received: dict[str, float] = {}
    for events in calls:
        for ev in events:
            received.setdefault(ev.message_id, ev.received_at)
    # Sorted: concurrent writers claim ids in one order, so they cannot deadlock on them.
    ids = sorted(received)
    unclaimed: set[str] = set()
    if ids:
        rows = await conn.fetch(Q["remember-message-ids"], ids, [received[i] for i in ids])
        unclaimed = {row[0] for row in rows}
    fresh_by_call: list[list[Event]] = []
    for events in calls:
        fresh = []
        for ev in events:
            if ev.message_id in unclaimed:
                unclaimed.discard(ev.message_id)
                ev.partition = partition_of(ev.contact_key, partitions)
                fresh.append(ev)
        fresh_by_call.append(fresh)
    written = [ev for fresh in fresh_by_call for ev in fresh]
    if not written:
        return fresh_by_call
    # Encoded before the partitions are locked: their locks are held until the commit. The
    # body leaves out the offset, which the row's column holds.
    bodies = [encode(ev) for ev in written]
    counts = Counter(ev.partition for ev in written)
    touched = sorted(counts)
    await conn.execute(Q["lock-partitions"], touched)
    heads = dict(await conn.fetch(Q["advance-heads"], touched, [counts[p] for p in touched]))
    next_offset = {p: heads[p] - counts[p] + 1 for p in touched}
    for ev in written:
        ev.offset = next_offset[ev.partition]
        next_offset[ev.partition] += 1
    await conn.execute(
        Q["insert-events"],
        [ev.partition for ev in written],
        [ev.offset for ev in written],
        [ev.message_id for ev in written],
        [ev.contact_key for ev in written],
        [ev.type for ev in written],
        [ev.received_at for ev in written],
        bodies,
        [send_key_of(ev) for ev in written],
    )
    return fresh_by_call


async def _append_each(
    conn: asyncpg.Connection, calls: list[_Append], partitions: int
) -> list[_Outcome]:
    """One transaction, each call on a savepoint of its own: bad input in one call (a NUL
    character, which PostgreSQL text cannot hold) fails that call alone."""
    outcomes: list[_Outcome] = []
    async with conn.transaction():
        for call in calls:
            try:
                async with conn.transaction():
                    [fresh] = await _append_calls(conn, [call.events], partitions)
            except asyncpg.DataError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(fresh)
    return outcomes


class PostgresEventLog:
    def __init__(
        self, dsn: str, partitions: int, *, pool_size: int = 8, timeout: float = 10.0
    ) -> None:
        if partitions < 1:
            raise ValueError(f"a log needs at least one partition, not {partitions}")
        self.partitions = partitions
        self._dsn = dsn
        self._where = describe(dsn)
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: asyncpg.Pool | None = None
        # Group commit: appends that arrive while a transaction is in flight share the next.
        self._pending: list[_Append] = []
        self._flushing: asyncio.Task[None] | None = None

    async def open(self) -> None:
        pool = await open_pool(
            self._dsn, name="mailpulse-log", max_size=self._pool_size, max_wait=self._timeout
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                # The first process to open the log fixes its partition count: offsets are
                # numbered per partition, so another count would scatter contacts anew.
                await conn.execute(Q["claim-partition-count"], str(self.partitions))
                stored = int(await conn.fetchval(Q["partition-count"]))
                if stored != self.partitions:
                    raise ValueError(
                        f"the log in {self._where} has {stored} partitions, but this process "
                        f"was configured with {self.partitions}; the count cannot change"
                    )
                await conn.execute(Q["create-partitions"], self.partitions)
        except BaseException:
            await close_pool(pool, self._timeout)
            raise
        self._pool = pool

    async def close(self) -> None:
        if self._flushing is not None:
            await asyncio.shield(self._flushing)
        pool, self._pool = self._pool, None
        if pool is not None:
            await close_pool(pool, self._timeout)

    def _open_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"the log in {self._where} is not open")
        return self._pool

    def _check(self, partition: int) -> None:
        if not 0 <= partition < self.partitions:
            raise ValueError(
                f"partition {partition} is not one of this log's {self.partitions} "
                f"(0..{self.partitions - 1})"
            )

    async def append(
        self,
        events: Sequence[Event],
        on_written: Callable[[list[Event]], None] | None = None,
    ) -> list[Event]:
        """Durably append; `on_written` runs after the commit (see the module's docstring).

        Raises LogUnavailable when PostgreSQL cannot take the write now: nothing was stored,
        or (when the connection broke during the COMMIT) a retry is dropped as a repeat."""
        self._open_pool()
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Append(events, future, on_written))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush(), name="mp-log-flush")
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    outcomes = await self._write(group)
                except UNREACHABLE as exc:
                    outcomes = [_unavailable(self._where, exc) for _ in group]
                except Exception as exc:  # a bug fails its callers instead of hanging them
                    outcomes = [exc] * len(group)
                for call, outcome in zip(group, outcomes, strict=True):
                    _settle(call, outcome)
        finally:
            self._flushing = None

    async def _write(self, group: list[_Append]) -> list[_Outcome]:
        pool = self._open_pool()
        async with pool.acquire(timeout=self._timeout) as conn:
            try:
                async with conn.transaction():
                    fresh = await _append_calls(conn, [c.events for c in group], self.partitions)
                    return list(fresh)
            except asyncpg.DataError as exc:
                if len(group) == 1:
                    return [exc]
            return await _append_each(conn, group, self.partitions)

    async def wait_durable(self, first: int, last: int, partition: int = 0) -> None:
        """Offsets are handed out after their commit: they are durable already."""
        self._check(partition)

    def lost(self, offset: int, partition: int = 0) -> bool:
        """No offset is handed out before its commit, so none is ever lost."""
        self._check(partition)
        return False

    async def read(self, after: int, limit: int, partition: int = 0) -> list[Event]:
        self._check(partition)
        rows = await self._open_pool().fetch(Q["read-after"], partition, after, limit)
        return [event_at(body, offset, partition) for offset, body in rows]

    async def head(self, partition: int = 0) -> int:
        self._check(partition)
        head: int = await self._open_pool().fetchval(Q["head"], partition)
        return head

    async def for_contact(self, keys: Sequence[str], limit: int) -> list[Event]:
        """In append order, across partitions: a contact's identities may hash apart."""
        rows = await self._open_pool().fetch(Q["for-contact"], list(keys), limit)
        return [event_at(body, offset, partition) for partition, offset, body in reversed(rows)]

    async def for_send(self, send_key: str, limit: int) -> list[Event]:
        rows = await self._open_pool().fetch(Q["for-send"], send_key, limit)
        return [event_at(body, offset, partition) for partition, offset, body in rows]

    async def forget_message_ids(self, before: float) -> int:
        forgotten: int = await self._open_pool().fetchval(Q["forget-message-ids"], before)
        return forgotten

    async def scrub_contact(self, keys: Sequence[str]) -> int:
        return await self._scrub(Q["contact-bodies"], list(keys))

    async def scrub_events(self, positions: Sequence[tuple[int, int]]) -> int:
        for partition, _ in positions:
            self._check(partition)
        return await self._scrub(
            Q["bodies-at"], [p for p, _ in positions], [o for _, o in positions]
        )

    async def _scrub(self, select: str, *args: object) -> int:
        async with self._open_pool().acquire(timeout=self._timeout) as conn, conn.transaction():
            changed = []
            for partition, offset, body in await conn.fetch(select, *args):
                scrubbed = encode(scrub_event(decode_event(body)))
                if scrubbed != body:
                    changed.append((partition, offset, scrubbed))
            if changed:
                await conn.execute(Q["rewrite-bodies"], *map(list, zip(*changed, strict=True)))
        return len(changed)

    async def forget_before(self, partition: int, through: int, before: float, limit: int) -> int:
        self._check(partition)
        async with self._open_pool().acquire(timeout=self._timeout) as conn:
            # Never the newest event, as in every store (the head row would not need it).
            through = min(through, int(await conn.fetchval(Q["head"], partition)) - 1)
            last = None
            for offset, received_at in await conn.fetch(Q["oldest"], partition, through, limit):
                if received_at >= before:
                    break
                last = offset
            if last is None:
                return 0
            status = await conn.execute(Q["forget-through"], partition, last)
        return int(status.rpartition(" ")[2])


def _unavailable(where: str, cause: BaseException) -> LogUnavailable:
    detail = str(cause)
    why = type(cause).__name__ + (f": {detail}" if detail else "")
    error = LogUnavailable(f"{where}: {why}")
    error.__cause__ = cause
    return error


def _settle(call: _Append, outcome: _Outcome) -> None:
    # `on_written` runs even when the caller has given up waiting: the events are in the log
    # all the same, and whoever consumes them must hear of them.
    if not isinstance(outcome, Exception) and call.on_written is not None:
        try:
            call.on_written(outcome)
        except Exception as exc:
            outcome = exc
    if call.future.done():
        return
    if isinstance(outcome, Exception):
        call.future.set_exception(outcome)
    else:
        call.future.set_result(outcome)
