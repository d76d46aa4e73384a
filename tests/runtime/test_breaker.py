"""The breaker stage over a real store (SQLite and PostgreSQL): the alert fires once and resolves
once, the breaker trips once, also with two evaluators judging at once (as scale-out workers
do), stays tripped across a restart, and resumes only when an operator says so; after a resume
only what follows is judged."""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction

import pytest

from mailpulse.observe import Metrics
from mailpulse.policy.breaker import BUCKET, BreakerSettings, bucket_of
from mailpulse.runtime.breaker import Breaker, ResumeRefused
from mailpulse.store import FoldCommit, StateStore
from tests.runtime.test_fold import Clock
from tests.store.conftest import StateFactory
from tests.store.conftest import open_state as open_state  # the fixture

NOW = 1_795_000_000.0
SETTINGS = BreakerSettings(alert=Fraction(1, 1000), pause=Fraction(3, 1000), min_sends=1000)


class Counted:
    """What the folds would commit: sends and complaints in the clock's bucket."""

    def __init__(self, state: StateStore, clock: Clock) -> None:
        self.state, self.clock, self.checkpoint = state, clock, 0

    async def __call__(self, sends: int, complaints: int) -> None:
        self.checkpoint += 1
        counts = [(bucket_of(self.clock.now), sends, complaints)]
        await self.state.commit(FoldCommit(checkpoint=self.checkpoint, complaint_counts=counts))


def moves(metrics: Metrics, move: str) -> float:
    return metrics.breaker_moves.labels(move)._value.get()


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = NOW
    return clock


async def test_the_alert_fires_once_and_resolves_once(
    open_state: StateFactory, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    state, metrics = await open_state(), Metrics()
    breaker, count = Breaker(state, SETTINGS, metrics, clock), Counted(state, clock)
    await count(999, 2)
    await breaker.evaluate()  # too few sends to judge
    assert (await state.breaker()).alert_at is None
    await count(1, 0)
    with caplog.at_level(logging.WARNING, "mailpulse.breaker"):
        for _ in range(3):
            await breaker.evaluate()
    assert moves(metrics, "alert_raised") == 1
    assert metrics.complaint_alert._value.get() == 1
    assert metrics.complaint_rate._value.get() == pytest.approx(0.002)
    [alert] = caplog.messages
    assert alert.startswith("complaint rate alert: 0.2%: 2 complaints about 1,000 marketing")
    assert not breaker.tripped
    await count(9000, 0)  # 2 in 10,000: 0.02 %
    caplog.clear()
    with caplog.at_level(logging.WARNING, "mailpulse.breaker"):
        for _ in range(3):
            await breaker.evaluate()
    assert moves(metrics, "alert_resolved") == 1
    assert metrics.complaint_alert._value.get() == 0
    assert [m.split(":")[0] for m in caplog.messages] == ["complaint rate alert resolved"]


async def test_the_breaker_trips_once(open_state: StateFactory, clock: Clock) -> None:
    state, metrics = await open_state(), Metrics()
    breaker, count = Breaker(state, SETTINGS, metrics, clock), Counted(state, clock)
    await count(1000, 2)
    await breaker.evaluate()
    assert not breaker.tripped and breaker.holding() is None
    await count(0, 1)  # 3 in 1,000: 0.3 % reached
    clock.now += 1
    for _ in range(3):
        await breaker.evaluate()
    assert moves(metrics, "tripped") == 1 and metrics.breaker_tripped._value.get() == 1
    record = await state.breaker()
    assert record.tripped_at == NOW + 1
    assert (record.sends, record.complaints) == (1000, 3)
    assert record.reason.startswith("the complaint rate reached 0.3%: 0.3%: 3 complaints")
    held = breaker.holding()
    assert held is not None and held.startswith("the protective breaker tripped at 2026-11-18T")


async def test_of_two_evaluators_judging_at_once_one_moves(
    open_state: StateFactory, clock: Clock
) -> None:
    """Two workers: each its own store connection, metrics and breaker; the same figures."""
    evaluators = [Breaker(await open_state(), SETTINGS, Metrics(), clock) for _ in range(2)]
    await Counted(await open_state(), clock)(1000, 4)
    for _ in range(3):
        await asyncio.gather(*(b.evaluate() for b in evaluators))
    for move in ("alert_raised", "tripped"):
        assert sum(moves(b._metrics, move) for b in evaluators) == 1
    assert all(b.tripped for b in evaluators)


async def test_a_trip_holds_across_a_restart_until_resumed(
    open_state: StateFactory, clock: Clock
) -> None:
    state = await open_state()
    await Counted(state, clock)(1000, 9)
    await Breaker(state, SETTINGS, Metrics(), clock).evaluate()
    await state.close()
    again = Breaker(await open_state(), SETTINGS, Metrics(), clock)
    await again.evaluate()
    assert again.tripped
    clock.now += 3 * 86400  # long after: nothing is judged, nothing resumes it by itself
    await again.evaluate()
    assert again.tripped


async def test_a_resume_is_forced_while_the_rate_is_over_and_judges_afresh(
    open_state: StateFactory, clock: Clock
) -> None:
    state, metrics = await open_state(), Metrics()
    breaker, count = Breaker(state, SETTINGS, metrics, clock), Counted(state, clock)
    with pytest.raises(ResumeRefused) as refused:
        await breaker.resume("key mpk_a")
    assert not refused.value.forcible and "not tripped" in refused.value.reason
    await count(1000, 5)
    await breaker.evaluate()
    clock.now += 60
    with pytest.raises(ResumeRefused) as refused:
        await breaker.resume("key mpk_a")
    assert refused.value.forcible
    assert "still at the pause threshold (0.3%): 0.5%: 5 complaints" in refused.value.reason
    assert breaker.tripped
    assert await breaker.resume("key mpk_a", force=True) == 0
    assert not breaker.tripped and moves(metrics, "resumed") == 1
    record = await state.breaker()
    assert (record.resumed_at, record.resumed_by) == (NOW + 60, "key mpk_a")
    # What it tripped on, in the same bucket, is not judged again.
    figures = await breaker.evaluate()
    assert (figures.sends, figures.complaints) == (0, 0) and not breaker.tripped
    # What follows is: a new send with complaints of its own trips it again.
    await count(1000, 3)
    assert (await breaker.evaluate()).complaints == 3
    assert breaker.tripped and moves(metrics, "tripped") == 2


async def test_once_the_window_is_past_a_resume_needs_no_force(
    open_state: StateFactory, clock: Clock
) -> None:
    state = await open_state()
    breaker = Breaker(state, SETTINGS, Metrics(), clock)
    await Counted(state, clock)(1000, 5)
    await breaker.evaluate()
    clock.now += SETTINGS.window + BUCKET
    assert await breaker.resume("project admin key") == 0
    assert not breaker.tripped
