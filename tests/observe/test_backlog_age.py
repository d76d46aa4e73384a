"""mailpulse_outbox_backlog_seconds, which the backlog_age rule watches: how long the oldest
message due has waited past its time, in both stores; a deferral due later is no backlog."""

from __future__ import annotations

import asyncio

from mailpulse.observe import Metrics
from mailpulse.runtime.alerting import keep_backlog_age
from mailpulse.store import FoldCommit, OutboxStatus, StateStore
from tests.store.conftest import StateFactory
from tests.store.conftest import open_state as open_state  # the fixture, both stores
from tests.store.test_state_contract import intent, update


async def backlog_at(state: StateStore, now: float) -> float:
    metrics = Metrics()
    metrics.outbox_backlog.set(-1)
    task = asyncio.create_task(keep_backlog_age(state, 1, metrics, lambda: now))
    try:
        while metrics.outbox_backlog._value.get() == -1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    return metrics.outbox_backlog._value.get()


async def test_the_backlog_is_the_oldest_due_row_waiting(open_state: StateFactory) -> None:
    state = await open_state()
    assert await backlog_at(state, 100.0) == 0.0  # nothing waits
    # Three rows queued at 10; one deferred to 40, one to 500 (not due at 100), one still queued.
    await state.commit(FoldCommit(checkpoint=1, intents=[intent(k) for k in ("a", "b", "c")]))
    await state.outbox_update(
        [
            update("a", OutboxStatus.DEFERRED, code=451, next_at=40.0),
            update("b", OutboxStatus.DEFERRED, code=451, next_at=500.0),
        ]
    )
    assert await backlog_at(state, 100.0) == 90.0  # "c", queued since 10
    await state.outbox_update([update("c", OutboxStatus.SENT, code=250, next_at=11.0)])
    assert await backlog_at(state, 100.0) == 60.0  # "a", due again since 40
    await state.outbox_update([update("a", OutboxStatus.SENT, code=250, next_at=41.0)])
    assert await backlog_at(state, 100.0) == 0.0  # "b" is not due until 500
