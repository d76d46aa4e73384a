"""The protective breaker in the state store: counts the folds add, one row that every process
moves with conditional updates (of two racing, one wins), and the rows it holds, let go by a
resume in the same transaction."""

from __future__ import annotations

import asyncio

from mailpulse.store import FoldCommit, OutboxStatus, OutboxUpdate
from mailpulse.store.interface import HELD_BY_BREAKER, StateStore
from mailpulse.types import Event
from tests.store.conftest import StateFactory
from tests.store.test_state_contract import intent


def held_event(key: str) -> Event:
    return Event(type="track", message_id=f"Email Held:{key}", contact_key="u1", event="Email Held")


async def counted(state: StateStore, checkpoint: int, *counts: tuple[float, int, int]) -> None:
    await state.commit(FoldCommit(checkpoint=checkpoint, complaint_counts=list(counts)))


async def trip(state: StateStore, at: float = 10.0, judged_from: float = 0.0) -> bool:
    return await state.trip_breaker(
        at, "0.5% of 2,000", sends=2000, complaints=10, since=0.0, judged_from=judged_from
    )


async def test_counts_add_up_per_bucket_from_a_time_on(open_state: StateFactory) -> None:
    state = await open_state()
    assert await state.complaint_counts(0.0) == (0, 0)
    await counted(state, 1, (0.0, 100, 1), (600.0, 50, 0))
    await counted(state, 2, (600.0, 25, 2), (1200.0, 0, 1))
    assert await state.complaint_counts(0.0) == (175, 4)
    assert await state.complaint_counts(600.0) == (75, 3)
    assert await state.complaint_counts(1200.1) == (0, 0)
    await state.forget_complaint_counts(1200.0)
    assert await state.complaint_counts(0.0) == (0, 1)


async def test_a_fresh_breaker_is_neither_raised_nor_tripped(open_state: StateFactory) -> None:
    record = await (await open_state()).breaker()
    assert (record.alert_at, record.tripped_at, record.resumed_at) == (None, None, None)


async def test_the_alert_is_raised_once_and_resolved_once(open_state: StateFactory) -> None:
    state = await open_state()
    assert not await state.set_complaint_alert(False, 1.0)  # nothing to resolve
    assert await state.set_complaint_alert(True, 2.0)
    assert not await state.set_complaint_alert(True, 3.0)
    assert (await state.breaker()).alert_at == 2.0
    assert await state.set_complaint_alert(False, 4.0)
    assert not await state.set_complaint_alert(False, 5.0)
    assert (await state.breaker()).alert_at is None


async def test_of_evaluators_racing_one_trips_and_one_raises(open_state: StateFactory) -> None:
    stores = [await open_state(), await open_state()]
    trips = await asyncio.gather(*(trip(stores[n % 2], 10.0 + n) for n in range(8)))
    alerts = await asyncio.gather(
        *(stores[n % 2].set_complaint_alert(True, 10.0 + n) for n in range(8))
    )
    assert trips.count(True) == 1 and alerts.count(True) == 1
    record = await stores[0].breaker()
    assert record.tripped_at == 10.0 + trips.index(True)
    assert (record.reason, record.sends, record.complaints) == ("0.5% of 2,000", 2000, 10)


async def test_a_trip_survives_a_restart(open_state: StateFactory) -> None:
    state = await open_state()
    assert await trip(state)
    await state.close()
    assert (await (await open_state()).breaker()).tripped_at == 10.0


async def test_rows_are_held_only_while_tripped(open_state: StateFactory) -> None:
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=1, intents=[intent("a"), intent("b")]))
    assert not await state.hold_for_breaker(["a"], 20.0, [held_event("a")])
    row = await state.outbox_get("a")
    assert row is not None and row.status == OutboxStatus.QUEUED
    assert await state.unshipped_lifecycle(10) == []
    await trip(state)
    assert await state.hold_for_breaker(["a"], 20.0, [held_event("a")])
    row = await state.outbox_get("a")
    assert row is not None and (row.status, row.last_text) == (OutboxStatus.DEFERRED, "breaker")
    assert row.next_attempt_at == HELD_BY_BREAKER
    assert [ev.message_id for ev in await state.unshipped_lifecycle(10)] == ["Email Held:a"]
    # Held means no sweep finds it, however late it looks.
    assert await state.outbox_due(1e11, 10) == [await state.outbox_get("b")]


async def test_a_resume_lets_the_held_rows_go_and_only_those(open_state: StateFactory) -> None:
    state = await open_state()
    rows = [intent("held"), intent("retry"), intent("quota"), intent("sent")]
    await state.commit(FoldCommit(checkpoint=1, intents=rows))
    await state.outbox_update(
        [
            OutboxUpdate(
                key="retry",
                status=OutboxStatus.DEFERRED,
                attempts=1,
                next_attempt_at=500.0,
                message_id="m",
                last_code=451,
                last_text="try later",
                updated_at=11.0,
            ),
            OutboxUpdate(
                key="quota",
                status=OutboxStatus.DEFERRED,
                attempts=0,
                next_attempt_at=3600.0,
                message_id="",
                last_code=0,
                last_text="quota",
                updated_at=11.0,
            ),
            OutboxUpdate(
                key="sent",
                status=OutboxStatus.SENT,
                attempts=1,
                next_attempt_at=11.0,
                message_id="s",
                last_code=250,
                last_text="ok",
                updated_at=11.0,
            ),
        ]
    )
    await trip(state)
    # A deferred row held keeps its attempts and Message-ID (a bounce about it finds it); a
    # row sent meanwhile is left as it is.
    assert await state.hold_for_breaker(["held", "retry", "sent"], 20.0)
    assert await state.resume_breaker(100.0, "key mpk_test", 0.0) == 2
    due = {row.intent.key: row for row in await state.outbox_due(1e13, 10)}
    assert {key: row.next_attempt_at for key, row in due.items()} == {
        "held": 100.0,
        "retry": 100.0,
        "quota": 3600.0,
    }
    assert (due["retry"].attempts, due["retry"].message_id) == (1, "m")
    sent = await state.outbox_get("sent")
    assert sent is not None and sent.status == OutboxStatus.SENT
    record = await state.breaker()
    assert (record.tripped_at, record.resumed_at, record.resumed_by) == (
        None,
        100.0,
        "key mpk_test",
    )
    assert await state.resume_breaker(101.0, "someone", 0.0) is None  # not tripped
    assert (await state.breaker()).resumed_at == 100.0


async def test_figures_judged_before_a_resume_trip_nothing(open_state: StateFactory) -> None:
    """An evaluator that read the breaker before an operator's resume: its trip is void."""
    state = await open_state()
    assert await trip(state, 10.0)
    await state.resume_breaker(20.0, "operator", 0.0)
    assert not await trip(state, 21.0, judged_from=0.0)
    assert (await state.breaker()).tripped_at is None
    assert await trip(state, 22.0, judged_from=20.0)


async def test_a_resume_keeps_its_bucket_so_far_as_the_baseline(open_state: StateFactory) -> None:
    state = await open_state()
    await counted(state, 1, (0.0, 10, 1), (600.0, 40, 3))
    await trip(state)
    await state.resume_breaker(700.0, "operator", 600.0)
    record = await state.breaker()
    assert (record.judged_from, record.baseline_sends, record.baseline_complaints) == (
        700.0,
        40,
        3,
    )


async def test_no_row_stays_held_past_a_resume_it_raced(open_state: StateFactory) -> None:
    """Holds racing a resume either come before it (and are let go by it) or find the breaker
    resumed (and hold nothing)."""
    stores = [await open_state(), await open_state()]
    keys = [f"k{n}" for n in range(40)]
    await stores[0].commit(FoldCommit(checkpoint=1, intents=[intent(k) for k in keys]))
    await trip(stores[0])

    async def hold(key: str) -> bool:
        return await stores[1].hold_for_breaker([key], 20.0)

    holds = [asyncio.create_task(hold(k)) for k in keys[:20]]
    resumed = asyncio.create_task(stores[0].resume_breaker(50.0, "operator", 0.0))
    holds += [asyncio.create_task(hold(k)) for k in keys[20:]]
    await asyncio.gather(resumed, *holds)
    left = await stores[0].outbox_due(1e13, 100)
    assert all(row.next_attempt_at < HELD_BY_BREAKER for row in left)
    assert resumed.result() == sum(h.result() for h in holds)
