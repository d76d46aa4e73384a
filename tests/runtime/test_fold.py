"""The fold on real SQLite files: re-folding after a crash changes nothing; timers fire."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailpulse.audience.segments import SegmentSet
from mailpulse.bus import InProcessBus
from mailpulse.campaigns.abtest import Conversion
from mailpulse.journeys import JourneyDefinition, parse_journey
from mailpulse.observe import Metrics
from mailpulse.policy import NO_POLICY, SendPolicy
from mailpulse.runtime.cache_bound import CacheBound
from mailpulse.runtime.fold import SENDS, FoldWorker
from mailpulse.runtime.shipper import LifecycleShipper
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore
from mailpulse.types import Event, SendIntent

CART = parse_journey(
    textwrap.dedent(
        """\
        trigger: {event: Product Added}
        entry: always
        exit_on: [{event: Order Completed}]
        steps:
          - send: added
          - wait: 1h
          - send: reminder
        """
    ),
    Path("cart.yaml"),
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(
        self,
        data: Path,
        clock: Clock,
        journeys: dict[str, JourneyDefinition] | None = None,
        policy: SendPolicy = NO_POLICY,
        segments: SegmentSet | None = None,
        conversion: Conversion | None = None,
    ) -> None:
        self.log = SqliteEventLog(data / "log.db")
        self.state = SqliteStateStore(data / "state.db")
        self.bus = InProcessBus()
        self.clock = clock
        self.shipper = LifecycleShipper(self.state, self.append)
        self.fold = FoldWorker(
            log=self.log,
            state=self.state,
            bus=self.bus,
            shipper=self.shipper,
            journeys={"cart": CART} if journeys is None else journeys,
            metrics=Metrics(),
            clock=clock,
            policy=policy,
            segments=segments,
            conversion=conversion,
        )

    async def append(self, events: list[Event]) -> list[Event]:
        # As the pipeline does: the fold sees events once written, before their fsync.
        return await self.log.append(events, on_written=self._to_fold)

    def _to_fold(self, written: list[Event]) -> None:
        for e in written:
            self.bus.publish_nowait("events", e.contact_key, e)

    async def sends(self, want: int) -> list[SendIntent]:
        got: list[SendIntent] = []
        async with asyncio.timeout(5):
            while len(got) < want:
                got += await self.bus.next_batch(SENDS, 0, 100, 1)
        return got


@contextlib.asynccontextmanager
async def running(data: Path, clock: Clock, **options: Any) -> AsyncIterator[Harness]:
    h = Harness(data, clock, **options)
    await h.log.open()
    await h.state.open()
    tasks = [asyncio.create_task(h.fold.run()), asyncio.create_task(h.shipper.run())]
    try:
        await asyncio.wait_for(h.fold.caught_up.wait(), 5)
        yield h
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await h.state.close()
        await h.log.close()


def track(n: int, user: str, name: str) -> Event:
    return Event(
        type="track",
        message_id=f"m{n}",
        contact_key=user,
        user_id=user,
        event=name,
        timestamp=1_000.0,
        received_at=1_000.0,
    )


def identify(n: int, user: str) -> Event:
    return Event(
        type="identify",
        message_id=f"m{n}",
        contact_key=user,
        user_id=user,
        traits={"email": f"{user}@example.com"},
    )


def anonymous(n: int, key: str, name: str, **properties: object) -> Event:
    """A track event of a visitor known only by an anonymousId."""
    return Event(
        type="track",
        message_id=f"m{n}",
        contact_key=key,
        anonymous_id=key,
        event=name,
        properties=dict(properties),
    )


def signs_in(n: int, user: str, key: str, **traits: object) -> Event:
    """The identify that tells `user` and the anonymous `key` are one person."""
    return Event(
        type="identify",
        message_id=f"m{n}",
        contact_key=user,
        user_id=user,
        anonymous_id=key,
        traits=dict(traits),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_refold_from_an_old_checkpoint_makes_no_new_intent(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock) as h:
        await h.append([identify(1, "u"), track(2, "u", "Product Added")])
        [first] = await h.sends(1)
        assert first.template == "added" and first.email == "u@example.com"
    # A crash that lost the last commit: the checkpoint goes back, the log stays.
    import sqlite3

    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute('UPDATE checkpoints SET "offset" = 0')
    async with running(tmp_path, clock) as h:
        assert await h.state.checkpoint() >= 2
        assert await h.bus.next_batch(SENDS, 0, 10, 0.3) == []
        counts = await h.state.outbox_counts()
        assert counts == {"queued": 1}


async def test_timer_fires_after_the_wait_and_exit_goal_stops_it(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock) as h:
        await h.append([identify(1, "a"), identify(2, "b")])
        await h.append([track(3, "a", "Product Added"), track(4, "b", "Product Added")])
        assert {s.contact_id for s in await h.sends(2)} == {"a", "b"}
        await h.append([track(5, "b", "Order Completed")])
        await asyncio.sleep(0.2)
        clock.now += 3_599
        assert await h.bus.next_batch(SENDS, 0, 10, 1.2) == []
        clock.now += 2
        [reminder] = await h.sends(1)
        assert (reminder.contact_id, reminder.template) == ("a", "reminder")


async def test_anonymous_history_merges_into_the_identified_contact(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock) as h:
        await h.append([anonymous(1, "anon-1", "Product Added")])
        await asyncio.sleep(0.2)
        assert await h.bus.next_batch(SENDS, 0, 10, 0.1) == []  # no address yet: suppressed
        await h.append([signs_in(2, "u9", "anon-1", email="u9@example.com")])
        await asyncio.sleep(0.2)
        assert await h.state.resolve(["anon-1"]) == {"anon-1": "u9"}
        [row] = await h.state.outbox_for_contact(["u9", "anon-1"], 10)
        assert row.status == "suppressed" and "no email address" in row.last_text


class FailingDisk:
    """An executor whose every job fails like a dying disk: the COMMIT never happens."""

    def submit(self, fn, *args, **kwargs):
        raise OSError(5, "Input/output error")


async def test_nothing_derived_from_an_uncommitted_event_survives(
    tmp_path: Path, clock: Clock
) -> None:
    from mailpulse.store import LogUnavailable

    async with running(tmp_path, clock) as h:
        await h.append([identify(1, "u")])
        healthy = h.log._db._fsync
        h.log._db._fsync = FailingDisk()  # type: ignore[assignment]
        with pytest.raises(LogUnavailable):
            await h.append([track(2, "u", "Product Added")])
        h.log._db._fsync = healthy
        await asyncio.sleep(0.2)
        # The fold had started on the event; its commit never came, so no intent, no state.
        assert await h.bus.next_batch(SENDS, 0, 10, 0.2) == []
        assert await h.state.outbox_counts() == {}
        # The client retries (same messageId): now it commits, and the journey runs once.
        await h.append([track(2, "u", "Product Added")])
        [sent] = await h.sends(1)
        assert sent.template == "added"
        assert await h.state.outbox_counts() == {"queued": 1}


async def test_contacts_dropped_from_the_cache_come_back_whole(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock) as h:
        h.fold._cache_bound = CacheBound(5, 5)
        await h.append([identify(n, f"c{n}") for n in range(1, 21)])
        await h.append([track(100 + n, f"c{n}", "Product Added") for n in range(1, 21)])
        assert len(await h.sends(20)) == 20
        assert len(h.fold._contacts) <= 6
        # c1 was dropped long ago: its address and its running journey come back from the store.
        await h.append([track(200, "c1", "Order Completed"), track(201, "c1", "Product Added")])
        [again] = await h.sends(1)
        assert (again.contact_id, again.email) == ("c1", "c1@example.com")
        instances = await h.state.instances_for("c1")
        assert sorted(i.status for i in instances) == ["active", "exited"]


async def test_the_cache_grows_for_people_who_come_back_not_for_our_own_events(
    tmp_path: Path, clock: Clock
) -> None:
    """A send to everyone reads back each contact an import dropped, once: the bound stays.
    People whose own events keep coming after they were dropped make it grow."""

    async def fold_all(events: list[Event]) -> None:
        for start in range(0, len(events), 200):
            written = await h.append(events[start : start + 200])
        async with asyncio.timeout(10):
            while h.fold.checkpoint < written[-1].offset:  # noqa: ASYNC110 (a plain int)
                await asyncio.sleep(0.01)

    users = [f"u{n}" for n in range(1000)]
    async with running(tmp_path, clock, journeys={}) as h:
        h.fold._cache_bound = CacheBound(50, 2000)
        await fold_all([identify(n, user) for n, user in enumerate(users)])
        ours = [
            Event(type="track", message_id=f"s{n}", contact_key=user, event="Email Sent")
            for n, user in enumerate(users)
        ]
        await fold_all(ours)
        assert h.fold._cache_bound.size == 50
        assert len(h.fold._contacts) <= 55
        for again in range(3):
            base = 10_000 + 1000 * again
            await fold_all([track(base + n, u, "Product Viewed") for n, u in enumerate(users)])
        assert h.fold._cache_bound.size >= len(users)  # every one of them fits now


async def test_a_merge_moves_journey_history_and_one_run_goes_on(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock) as h:
        await h.append([identify(1, "u")])
        await h.append([track(2, "u", "Product Added")])
        anon = Event(
            type="track", message_id="m3", contact_key="a", anonymous_id="a", event="Product Added"
        )
        await h.append([anon])
        await h.sends(1)
        await asyncio.sleep(0.2)
        merge = Event(
            type="identify", message_id="m4", contact_key="u", user_id="u", anonymous_id="a"
        )
        await h.append([merge])
        await asyncio.sleep(0.2)
    async with running(tmp_path, clock) as h:
        instances = await h.state.instances_for("u")
        assert sorted(i.status for i in instances) == ["active", "exited"]
        assert await h.state.instances_for("a") == []
        # One cart journey runs on: its reminder comes once, after the wait.
        clock.now += 3_601
        [reminder] = await h.sends(1)
        assert (reminder.contact_id, reminder.template) == ("u", "reminder")
        assert await h.bus.next_batch(SENDS, 0, 10, 0.5) == []


async def test_events_the_bus_never_brought_are_folded_from_the_log(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock) as h:
        # Appended without a hand-over to the bus, as when a publish fails after the commit.
        await h.log.append([identify(1, "ann"), track(2, "ann", "Product Added")])
        sent = await h.sends(1)
    assert [(s.contact_id, s.template) for s in sent] == [("ann", "added")]
    assert h.fold.checkpoint == 2
