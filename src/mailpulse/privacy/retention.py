"""The retention of raw events ([privacy] event_retention): the log's events received longer
ago leave it, partition by partition, oldest first.

Never one that state still needs: only events at or below their partition's checkpoint (what
its fold has applied: everything derived from them is in the state store, and a restart folds
on from the checkpoint) and never a partition's newest event (offsets count on from it). What
the folds keep (profiles, segment aggregates, journey positions, suppression) outlives the
events it was folded from; a segment added or changed later is backfilled from the events
retained, so a condition looking back further than the retention sees only that far.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mailpulse.observe import Metrics
from mailpulse.store import EventLog, StateStore

PAGE = 2000  # events deleted per transaction: appends get their turn in between
SWEEP_EVERY = 3600.0  # seconds, at most: a tenth of the retention when that is shorter


async def forget_old_events(log: EventLog, state: StateStore, retention: float, now: float) -> int:
    """One sweep: how many events went."""
    forgotten = 0
    for partition in range(log.partitions):
        through = await state.checkpoint(partition)
        while gone := await log.forget_before(partition, through, now - retention, PAGE):
            forgotten += gone
            await asyncio.sleep(0)
    return forgotten


async def keep_retention(
    log: EventLog,
    state: StateStore,
    retention: float,
    metrics: Metrics,
    clock: Callable[[], float],
) -> None:
    """Sweep now and then, for as long as the pipeline runs."""
    while True:
        metrics.events_forgotten.inc(await forget_old_events(log, state, retention, clock()))
        await asyncio.sleep(min(retention / 10, SWEEP_EVERY))
