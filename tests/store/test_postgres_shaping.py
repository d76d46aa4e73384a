"""Shaping shared through PostgreSQL: limiters on separate pools, as in separate workers,
together keep one destination's rate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mailpulse.delivery.shaping import Destination, RateLimiter, ShapingRule
from mailpulse.runtime.wiring import rate_limiter_for
from mailpulse.store.postgres import PostgresStateStore

RATE = 20.0
WORKERS = 3
SENDS_EACH = 20


class CountingStore(PostgresStateStore):
    """The PostgreSQL state, counting its shaping round trips."""

    reservations = 0

    async def reserve_turns(self, key: str, seconds: float) -> tuple[float, float]:
        self.reservations += 1
        return await super().reserve_turns(key, seconds)


@pytest.fixture
async def stores(postgres_dsn: str) -> AsyncIterator[list[CountingStore]]:
    stores = [CountingStore(postgres_dsn) for _ in range(WORKERS)]
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


async def test_workers_together_keep_one_rate(stores: list[CountingStore]) -> None:
    limiters = [rate_limiter_for(store) for store in stores]
    dest = Destination("example.com", ShapingRule("example.com", RATE))
    loop = asyncio.get_running_loop()

    async def worker(limiter: RateLimiter) -> list[float]:
        async def send() -> float:
            await limiter.wait_turn(dest)
            return loop.time()

        return list(await asyncio.gather(*(send() for _ in range(SENDS_EACH))))

    per_worker = await asyncio.gather(*(worker(limiter) for limiter in limiters))
    turns = sorted(t for times in per_worker for t in times)
    span = turns[-1] - turns[0]
    rate = (len(turns) - 1) / span
    round_trips = sum(store.reservations for store in stores)
    print(
        f"\nPostgreSQL limiter, {WORKERS} pools x {SENDS_EACH} sends at {RATE:.0f}/s: "
        f"{rate:.1f}/s together, {round_trips} round trips"
    )
    assert rate == pytest.approx(RATE, rel=0.25), "one rate for all, not one per worker"
    assert round_trips <= len(turns) // 4, "sends that wait together share a round trip"
    # Each worker takes a little of the timeline at a time, so none waits behind another's
    # whole backlog.
    assert max(min(times) for times in per_worker) - turns[0] < 0.6 * span


async def test_an_unreachable_timeline_fails_the_wait(stores: list[CountingStore]) -> None:
    limiter = rate_limiter_for(stores[0])
    dest = Destination("example.com", ShapingRule("example.com", RATE))
    await stores[0].close()
    with pytest.raises(RuntimeError, match="not open"):
        await limiter.wait_turn(dest)
    await stores[0].open()
    assert await limiter.wait_turn(dest) < 1.0
