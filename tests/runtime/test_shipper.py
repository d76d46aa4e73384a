"""The lifecycle shipper on real SQLite files: batches gather for a linger, none is lost."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import pytest

import mailpulse.runtime.shipper as shipper_module
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.runtime.shipper import LifecycleShipper
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore
from mailpulse.types import Event, SendIntent


def sent(n: int) -> Event:
    intent = SendIntent(
        key=f"campaign:winter:c{n}",
        contact_id=f"c{n}",
        email=f"c{n}@x.test",
        template="t",
        context={},
    )
    return lifecycle_event(Lifecycle.SENT, intent, 1_000.0 + n)


class Log:
    """The real log, with each append's events noted, and the first `held` appends kept open
    until released (or failed with `failing`)."""

    def __init__(self, path: Path) -> None:
        self.log = SqliteEventLog(path)
        self.batches: list[list[str]] = []
        self.held = 0
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.failing: Exception | None = None
        self.appended = asyncio.Condition()

    async def append(self, events: Sequence[Event]) -> list[Event]:
        if self.failing is not None:
            failure, self.failing = self.failing, None
            raise failure
        if self.held:
            self.held -= 1
            self.holding.set()
            await self.release.wait()
        written = await self.log.append(events)
        self.batches.append([ev.message_id for ev in events])
        async with self.appended:
            self.appended.notify_all()
        return written

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5), self.appended:
            await self.appended.wait_for(lambda: sum(map(len, self.batches)) >= count)


@contextlib.asynccontextmanager
async def opened(tmp_path: Path):  # type: ignore[no-untyped-def]
    log, state = Log(tmp_path / "log.db"), SqliteStateStore(tmp_path / "state.db")
    await log.log.open()
    await state.open()
    try:
        yield log, state
    finally:
        await state.close()
        await log.log.close()


async def test_what_comes_during_a_delivery_waits_for_the_next_linger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outcomes arrive one by one while a batch is being delivered: they go together after
    the next linger, not each in a commit of its own the moment the delivery ends."""
    monkeypatch.setattr(shipper_module, "LINGER", 0.2)
    async with opened(tmp_path) as (log, state):
        shipper = LifecycleShipper(state, log.append)
        log.held = 1
        running = asyncio.create_task(shipper.run())
        try:
            shipper.ship([sent(n) for n in range(3)])
            async with asyncio.timeout(5):
                await log.holding.wait()  # the first delivery is under way
            for n in range(3, 8):
                shipper.ship([sent(n)])
                await asyncio.sleep(0)
            log.release.set()
            await log.until(3)
            await asyncio.sleep(0.05)  # well inside the linger
            assert len(log.batches) == 1
            await log.until(8)
            assert log.batches == [
                [sent(n).message_id for n in range(3)],
                [sent(n).message_id for n in range(3, 8)],
            ]
            assert await log.log.head(0) == 8
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running


async def test_a_failed_append_loses_nothing_and_keeps_the_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append that fails ends the run (its supervisor starts it again); the events it held
    and those behind it go out on the next run, in the order they were shipped."""
    monkeypatch.setattr(shipper_module, "LINGER", 0.01)
    monkeypatch.setattr(shipper_module, "_BATCH", 2)
    async with opened(tmp_path) as (log, state):
        shipper = LifecycleShipper(state, log.append)
        log.failing = OSError("disk full")
        shipper.ship([sent(n) for n in range(5)])
        with pytest.raises(OSError, match="disk full"):
            await shipper.run()
        assert log.batches == []
        shipper.ship([sent(5)])
        running = asyncio.create_task(shipper.run())
        try:
            await log.until(6)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        assert [m for batch in log.batches for m in batch] == [sent(n).message_id for n in range(6)]
        assert max(map(len, log.batches)) == 2
