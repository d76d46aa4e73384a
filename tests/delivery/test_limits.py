"""Quotas over a real SQLite state store: windows by the clock, the first used-up window
holds a send, and a send held by one quota is not counted by another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpulse.delivery.limits import DAY, HOUR, Quota, Quotas, QuotaStatus
from mailpulse.store.sqlite import SqliteStateStore

NOON = 20_000 * DAY + 12 * HOUR


class Clock:
    def __init__(self) -> None:
        self.now = NOON + 10.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    store = SqliteStateStore(tmp_path / "state.db")
    await store.open()
    yield store
    await store.close()


def test_windows_are_utc_hours_and_days() -> None:
    assert Quota("hourly", 5, HOUR).window(NOON + 10) == (f"hourly:{int(NOON)}", NOON + HOUR)
    day_start = NOON - 12 * HOUR
    assert Quota("daily", 5, DAY).window(NOON) == (f"daily:{int(day_start)}", day_start + DAY)


async def test_a_used_up_hour_holds_sends_until_it_ends(state: SqliteStateStore) -> None:
    clock = Clock()
    quotas = Quotas(state, [Quota("daily", 10, DAY), Quota("hourly", 2, HOUR)], clock)
    assert [await quotas.take() for _ in range(3)] == [None, None, NOON + HOUR]
    clock.now = NOON + HOUR
    assert await quotas.take() is None
    assert await quotas.status() == [
        QuotaStatus("daily", 10, 3, NOON + 12 * HOUR),
        QuotaStatus("hourly", 2, 1, NOON + 2 * HOUR),
    ]


async def test_a_send_one_quota_holds_is_not_counted_by_another(state: SqliteStateStore) -> None:
    clock = Clock()
    quotas = Quotas(state, [Quota("daily", 5, DAY), Quota("hourly", 1, HOUR)], clock)
    assert await quotas.take() is None
    assert await quotas.take() == NOON + HOUR  # the hour is used up; the day is not
    assert (await quotas.status())[0].used == 1
    clock.now += 3 * HOUR
    assert await quotas.take() is None
    assert (await quotas.status())[0].used == 2
