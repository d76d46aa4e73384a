"""What the PostgreSQL store adds to the contract: partitions, several processes at once,
migrations, and a server that goes away and comes back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from mailpulse.bus.interface import partition_of
from mailpulse.store import (
    FoldCommit,
    Handover,
    InstanceRecord,
    LogUnavailable,
    OutboxStatus,
    OutboxUpdate,
)
from mailpulse.store.postgres import PostgresEventLog, PostgresStateStore, migrate
from mailpulse.store.postgres.schema import available
from mailpulse.types import Event
from tests.store.test_log_contract import ev
from tests.store.test_state_contract import instance, intent

PARTITIONS = 4


def keys_in_distinct_partitions(count: int) -> list[str]:
    """Contact keys that land in `count` different partitions of PARTITIONS."""
    by_partition: dict[int, str] = {}
    for n in range(1000):
        by_partition.setdefault(partition_of(f"user-{n}", PARTITIONS), f"user-{n}")
    assert len(by_partition) >= count
    return [by_partition[p] for p in sorted(by_partition)][:count]


@pytest.fixture
async def log(postgres_dsn: str) -> AsyncIterator[PostgresEventLog]:
    log = PostgresEventLog(postgres_dsn, PARTITIONS)
    await log.open()
    yield log
    await log.close()


@pytest.fixture
async def state(postgres_dsn: str) -> AsyncIterator[PostgresStateStore]:
    state = PostgresStateStore(postgres_dsn)
    await state.open()
    yield state
    await state.close()


# -- partitions ----------------------------------------------------------------------------


async def test_a_contacts_events_share_a_partition_numbered_from_one(
    log: PostgresEventLog,
) -> None:
    contacts = [f"user-{n}" for n in range(12)]
    events = [ev(f"{c}-{i}", c) for i in range(3) for c in contacts]
    fresh = await log.append(events)

    assert len({partition_of(c, PARTITIONS) for c in contacts}) > 1
    for contact in contacts:
        own = [e for e in fresh if e.contact_key == contact]
        assert {e.partition for e in own} == {partition_of(contact, PARTITIONS)}
        assert [e.offset for e in own] == sorted(e.offset for e in own)
    for partition in range(PARTITIONS):
        expected = [e.message_id for e in fresh if e.partition == partition]
        stored = await log.read(0, 100, partition)
        assert [e.message_id for e in stored] == expected
        assert [e.offset for e in stored] == list(range(1, len(expected) + 1))
        assert {e.partition for e in stored} <= {partition}
        assert await log.head(partition) == len(expected)
        if len(expected) > 1:
            assert [e.message_id for e in await log.read(1, 1, partition)] == [expected[1]]


async def test_partitions_count_on_independently(log: PostgresEventLog) -> None:
    first, second = keys_in_distinct_partitions(2)
    await log.append([ev("a", first), ev("b", first)])
    [c] = await log.append([ev("c", second)])
    [d] = await log.append([ev("d", first)])
    assert (c.offset, d.offset) == (1, 3)
    assert await log.head(partition_of(first, PARTITIONS)) == 3
    assert await log.head(partition_of(second, PARTITIONS)) == 1


async def test_a_contacts_history_crosses_partitions_in_append_order(
    log: PostgresEventLog,
) -> None:
    anon, user, other = keys_in_distinct_partitions(3)
    await log.append([ev("a", anon), ev("b", user), ev("c", other)])
    await log.append([ev("d", anon), ev("e", user)])
    history = await log.for_contact([user, anon], limit=10)
    assert [e.message_id for e in history] == ["a", "b", "d", "e"]
    assert [(e.partition, e.offset) for e in history][:2] == [
        (partition_of(anon, PARTITIONS), 1),
        (partition_of(user, PARTITIONS), 1),
    ]
    assert [e.message_id for e in await log.for_contact([user, anon], limit=3)] == ["b", "d", "e"]


async def test_a_partition_outside_the_log_is_refused(log: PostgresEventLog) -> None:
    for call in (log.read(0, 10, PARTITIONS), log.head(-1), log.wait_durable(1, 1, PARTITIONS)):
        with pytest.raises(ValueError, match=r"not one of this log's 4 \(0\.\.3\)"):
            await call


async def test_the_partition_count_is_fixed_by_the_first_open(postgres_dsn: str) -> None:
    first = PostgresEventLog(postgres_dsn, 4)
    await first.open()
    await first.close()
    with pytest.raises(ValueError, match=r"has 4 partitions.*configured with 8"):
        await PostgresEventLog(postgres_dsn, 8).open()
    again = PostgresEventLog(postgres_dsn, 4)
    await again.open()
    await again.close()


# -- several writers -----------------------------------------------------------------------


async def test_two_nodes_append_at_once_without_gaps_or_repeats(postgres_dsn: str) -> None:
    nodes = [PostgresEventLog(postgres_dsn, PARTITIONS) for _ in range(2)]
    for node in nodes:
        await node.open()
    try:
        # Both nodes receive ids 200..399 (a client retrying against another node), in
        # opposite orders, as many small concurrent requests.
        ids = {0: range(0, 400), 1: reversed(range(200, 600))}
        batches = [
            (nodes[n], [ev(f"m{i}", f"user-{i % 37}") for i in chunk])
            for n, id_range in ids.items()
            for chunk in _chunks(list(id_range), 10)
        ]
        results = await asyncio.gather(*(node.append(batch) for node, batch in batches))
    finally:
        for node in nodes:
            await node.close()

    fresh = [e for batch in results for e in batch]
    assert sorted(e.message_id for e in fresh) == sorted(f"m{i}" for i in range(600))
    reader = PostgresEventLog(postgres_dsn, PARTITIONS)
    await reader.open()
    try:
        total = 0
        for partition in range(PARTITIONS):
            stored = await reader.read(0, 1000, partition)
            assert [e.offset for e in stored] == list(range(1, len(stored) + 1))
            handed_out = {(e.message_id, e.offset) for e in fresh if e.partition == partition}
            assert {(e.message_id, e.offset) for e in stored} == handed_out
            total += len(stored)
        assert total == 600
    finally:
        await reader.close()


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def test_appends_of_one_turn_share_a_transaction(
    log: PostgresEventLog, postgres_dsn: str
) -> None:
    await asyncio.gather(*(log.append([ev(f"{w}-{i}") for i in range(20)]) for w in range(50)))
    conn = await asyncpg.connect(postgres_dsn)
    try:
        # xmin: the transaction that wrote the row. The flush starts after every append of
        # this turn has queued, so all fifty ride in one.
        writers = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM events")
    finally:
        await conn.close()
    assert writers == 1


async def test_bad_input_fails_its_own_append_not_its_group(log: PostgresEventLog) -> None:
    [good, bad, also_good] = await asyncio.gather(
        log.append([ev("a")]),
        log.append([ev("b\x00")]),  # PostgreSQL text cannot hold NUL
        log.append([ev("c")]),
        return_exceptions=True,
    )
    assert isinstance(bad, asyncpg.DataError)
    assert isinstance(good, list) and isinstance(also_good, list)
    assert [(e.message_id, e.offset) for e in good + also_good] == [("a", 1), ("c", 2)]
    partition = partition_of("c1", PARTITIONS)
    assert [e.message_id for e in await log.read(0, 10, partition)] == ["a", "c"]


# -- migrations ----------------------------------------------------------------------------


async def test_migrations_apply_once_even_when_run_at_once(postgres_dsn: str) -> None:
    versions = [version for version, _ in available()]
    assert versions[:2] == ["0001", "0002"]
    runs = await asyncio.gather(*(migrate(postgres_dsn) for _ in range(5)))
    assert sorted(runs, key=len) == [[]] * 4 + [versions]
    assert await migrate(postgres_dsn) == []
    conn = await asyncpg.connect(postgres_dsn)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [r[0] for r in rows] == versions


# -- a server that goes away ---------------------------------------------------------------


class Outage:
    """A TCP proxy in front of PostgreSQL that can go down like the server itself: every
    connection cut, new ones refused, until it is up again on the same port."""

    def __init__(self, dsn: str) -> None:
        parts = urlsplit(dsn)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._dsn = parts
        self._server: asyncio.Server | None = None
        self._port = 0
        self._links: set[asyncio.StreamWriter] = set()

    @property
    def dsn(self) -> str:
        user = self._dsn.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self._port}" if user else f"127.0.0.1:{self._port}"
        return self._dsn._replace(netloc=netloc).geturl()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._links:
            writer.transport.abort()
        self._links.clear()
        await self._server.wait_closed()

    async def _link(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(*self._target)
        self._links |= {client_w, server_w}
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_an_unreachable_server_means_unavailable_until_it_is_back(
    postgres_dsn: str,
) -> None:
    outage = Outage(postgres_dsn)
    await outage.up()
    log = PostgresEventLog(outage.dsn, 1, timeout=2.0)
    await log.open()
    try:
        await log.append([ev("a")])
        await outage.down()
        heard: list[Event] = []
        for message_id in ("b", "c"):  # a pooled connection that died, then a new one refused
            with pytest.raises(LogUnavailable, match=r"PostgreSQL at 127\.0\.0\.1:\d+/mp_test_"):
                await log.append([ev(message_id)], on_written=heard.extend)
        assert heard == []
        await outage.up()
        [d] = await log.append([ev("d")])
        assert d.offset == 2  # nothing of the failed appends was stored
        assert [e.message_id for e in await log.read(0, 10)] == ["a", "d"]
    finally:
        await log.close()
        await outage.down()


async def test_terminated_connections_are_replaced(postgres_dsn: str) -> None:
    log = PostgresEventLog(postgres_dsn, 1)
    await log.open()
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await log.append([ev("a")])
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'mailpulse-log'"
        )
        failures = 0
        for attempt in range(3):
            try:
                await log.append([ev(f"after-{attempt}")])
                break
            except LogUnavailable:
                failures += 1
        # At most the one connection that died under the append fails it; then the pool
        # connects anew by itself.
        assert failures <= 1
        assert [e.offset for e in await log.read(0, 10)] == [1, 2]
    finally:
        await admin.close()
        await log.close()


# -- state per partition -------------------------------------------------------------------


def _deferred(key: str, at: float) -> OutboxUpdate:
    return OutboxUpdate(
        key=key,
        status=OutboxStatus.DEFERRED,
        attempts=1,
        next_attempt_at=at,
        message_id="",
        last_code=451,
        last_text="later",
        updated_at=at,
    )


def _lifecycle(message_id: str) -> Event:
    return Event(type="track", message_id=message_id, contact_key="u1", event="Email Queued")


async def test_each_partition_has_its_own_checkpoint_timers_sends_and_shipping(
    state: PostgresStateStore,
) -> None:
    for partition in (0, 1):
        await state.commit(
            FoldCommit(
                checkpoint=10 + partition,
                partition=partition,
                instances=[instance(f"i{partition}", 20.0 + partition)],
                intents=[intent(f"k{partition}")],
                lifecycle=[_lifecycle(f"queued-{partition}")],
            )
        )
    await state.outbox_update([_deferred("k1", 15.0)], [_lifecycle("deferred-1")], partition=1)

    assert [await state.checkpoint(p) for p in (0, 1, 2)] == [10, 11, 0]
    assert [await state.next_wake(p) for p in (0, 1, 2)] == [20.0, 21.0, None]
    assert [i.instance_id for i in await state.due_instances(30.0, 10, partition=1)] == ["i1"]
    assert [r.intent.key for r in await state.outbox_due(30.0, 10, partition=0)] == ["k0"]
    assert [r.intent.key for r in await state.outbox_due(30.0, 10, "deferred", 1)] == ["k1"]
    assert await state.outbox_due(30.0, 10, "queued", partition=1) == []
    shipped = {p: await state.unshipped_lifecycle(10, p) for p in (0, 1)}
    assert [e.message_id for e in shipped[0]] == ["queued-0"]
    assert [e.message_id for e in shipped[1]] == ["queued-1", "deferred-1"]


async def test_a_merge_moves_instances_to_the_survivor_and_the_merging_fold(
    state: PostgresStateStore,
) -> None:
    anon = InstanceRecord(
        instance_id="i-anon",
        contact_id="anon",
        journey_id="j",
        status="active",
        wake_at=5.0,
        entered_at=1.0,
        body=b"{}",
    )
    await state.commit(
        FoldCommit(checkpoint=1, partition=0, identities={"anon": "anon"}, instances=[anon])
    )
    await state.commit(
        FoldCommit(
            checkpoint=1,
            partition=1,
            merges={"anon": "u1"},
            deleted_contacts=["anon"],
            identities={"u1": "u1"},
        )
    )
    assert [i.instance_id for i in await state.instances_for("u1")] == ["i-anon"]
    assert await state.instances_for("anon") == []
    assert await state.identities_of("u1") == ["anon", "u1"]
    assert await state.due_instances(10.0, 10, partition=0) == []
    assert [i.instance_id for i in await state.due_instances(10.0, 10, partition=1)] == ["i-anon"]


async def test_a_handover_moves_a_contacts_timers_to_the_partition_it_goes_to(
    state: PostgresStateStore,
) -> None:
    await state.commit(FoldCommit(checkpoint=1, partition=0, instances=[instance("i-anon", 5.0)]))
    # Written in the same commit as the handover: the batch's last change to the instance.
    await state.commit(
        FoldCommit(
            checkpoint=2,
            partition=0,
            instances=[instance("i-anon", 6.0)],
            identities={"u1": "u1", "device": "u1"},
            handovers=[Handover("u1", "u9", 1)],
        )
    )
    assert await state.due_instances(10.0, 10, partition=0) == []
    [moved] = await state.due_instances(10.0, 10, partition=1)
    assert (moved.instance_id, moved.contact_id, moved.wake_at) == ("i-anon", "u1", 6.0)
    # Its identities name the survivor at once: the handing fold cannot take it back.
    assert await state.resolve(["u1", "device"]) == {"u1": "u9", "device": "u9"}
