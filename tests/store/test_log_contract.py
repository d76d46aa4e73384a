"""The event log: durable appends, offsets in order, repeats dropped by message id."""

from __future__ import annotations

import asyncio

import pytest

from mailpulse.types import Event
from tests.store.conftest import LogFactory


def ev(message_id: str, contact: str = "c1", **fields: object) -> Event:
    return Event(
        type="track",
        message_id=message_id,
        contact_key=contact,
        user_id=contact,
        event="Viewed",
        received_at=1000.0,
        timestamp=1000.0,
        **fields,  # type: ignore[arg-type]
    )


async def test_append_assigns_offsets_in_order_and_reads_back(open_log: LogFactory) -> None:
    log = await open_log()
    fresh = await log.append([ev("a"), ev("b"), ev("c", properties={"n": 2**70})])
    assert [e.offset for e in fresh] == [1, 2, 3]
    assert await log.head() == 3
    back = await log.read(0, 10)
    assert [e.message_id for e in back] == ["a", "b", "c"]
    assert back[2].properties == {"n": 2**70}  # JSON numbers have no size limit
    assert [e.message_id for e in await log.read(1, 1)] == ["b"]


async def test_repeated_message_ids_are_dropped(open_log: LogFactory) -> None:
    log = await open_log()
    await log.append([ev("a")])
    fresh = await log.append([ev("a"), ev("b"), ev("b"), ev("c")])
    assert [e.message_id for e in fresh] == ["b", "c"]
    assert [e.offset for e in fresh] == [2, 3]
    assert await log.head() == 3


async def test_forgetting_old_ids_ends_the_dedup_window(open_log: LogFactory) -> None:
    log = await open_log()
    await log.append([ev("a")])
    assert await log.forget_message_ids(before=999.0) == 0
    assert await log.append([ev("a")]) == []
    assert await log.forget_message_ids(before=1001.0) == 1
    assert [e.offset for e in await log.append([ev("a")])] == [2]


async def test_concurrent_appends_get_unique_contiguous_offsets(open_log: LogFactory) -> None:
    log = await open_log()
    results = await asyncio.gather(
        *(log.append([ev(f"{w}-{i}") for i in range(20)]) for w in range(50))
    )
    offsets = sorted(e.offset for batch in results for e in batch)
    assert offsets == list(range(1, 1001))
    assert [e.offset for e in await log.read(0, 2000)] == offsets


async def test_history_of_a_contact_across_its_identities(open_log: LogFactory) -> None:
    log = await open_log()
    await log.append([ev("a", "anon-1"), ev("b", "u1"), ev("c", "other"), ev("d", "u1")])
    history = await log.for_contact(["u1", "anon-1"], limit=10)
    assert [e.message_id for e in history] == ["a", "b", "d"]
    assert [e.message_id for e in await log.for_contact(["u1", "anon-1"], limit=2)] == ["b", "d"]


async def test_appends_survive_reopening(open_log: LogFactory) -> None:
    log = await open_log()
    await log.append([ev("a"), ev("b")])
    await log.close()
    again = await open_log()
    assert [e.message_id for e in await again.read(0, 10)] == ["a", "b"]
    assert await again.append([ev("b")]) == []


class FailingDisk:
    """An executor whose every job fails like a dying disk: the COMMIT never happens."""

    def submit(self, fn, *args, **kwargs):
        raise OSError(5, "Input/output error")

    def shutdown(self, wait: bool = True) -> None:
        pass


async def test_a_failed_commit_loses_early_offsets_for_good(tmp_path) -> None:
    from mailpulse.store import LogRolledBack, LogUnavailable
    from mailpulse.store.sqlite import SqliteEventLog

    log = SqliteEventLog(tmp_path / "log.db")
    await log.open()
    try:
        await log.append([ev("a")])
        early: list[Event] = []
        healthy = log._db._fsync
        log._db._fsync = FailingDisk()  # type: ignore[assignment]
        with pytest.raises(LogUnavailable, match="Input/output error"):
            await log.append([ev("b"), ev("c")], on_written=early.extend)
        log._db._fsync = healthy
        # The fold saw b and c early; they must never be taken for durable...
        assert [e.offset for e in early] == [2, 3]
        assert log.lost(2) and log.lost(3) and not log.lost(1)
        with pytest.raises(LogRolledBack):
            await log.wait_durable(2, 3)
        # ...and their offsets never come to mean other events.
        [d] = await log.append([ev("d")])
        assert d.offset == 4
        await log.wait_durable(4, 4)
        assert [(e.offset, e.message_id) for e in await log.read(0, 10)] == [(1, "a"), (4, "d")]
        # b was never stored, so it is not a duplicate either.
        assert [e.message_id for e in await log.append([ev("b")])] == ["b"]
    finally:
        await log.close()
