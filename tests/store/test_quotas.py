"""Send quotas in the state store: an atomic take per window, kept across a restart, shared by
every store open on the same data (as scale-out workers share PostgreSQL)."""

from __future__ import annotations

import asyncio

from mailpulse.store.interface import QUOTA_KEPT
from tests.store.conftest import StateFactory


async def test_a_window_takes_up_to_its_limit(open_state: StateFactory) -> None:
    state = await open_state()
    taken = [await state.take_quota("hourly:3600", 3, 7200.0) for _ in range(5)]
    assert taken == [1, 2, 3, None, None]
    assert await state.take_quota("hourly:7200", 3, 10800.0) == 1  # the next window: its own
    assert await state.quota_used(["hourly:3600", "hourly:7200", "daily:0"]) == {
        "hourly:3600": 3,
        "hourly:7200": 1,
    }


async def test_a_send_that_did_not_go_is_given_back(open_state: StateFactory) -> None:
    state = await open_state()
    assert await state.take_quota("daily:0", 1, 86400.0) == 1
    assert await state.take_quota("daily:0", 1, 86400.0) is None
    await state.return_quota("daily:0")
    await state.return_quota("daily:0")  # never below zero
    assert await state.quota_used(["daily:0"]) == {"daily:0": 0}
    assert await state.take_quota("daily:0", 1, 86400.0) == 1


async def test_takes_at_once_never_pass_the_limit(open_state: StateFactory) -> None:
    stores = [await open_state(), await open_state()]
    taken = await asyncio.gather(
        *(stores[n % 2].take_quota("hourly:0", 25, 3600.0) for n in range(60))
    )
    assert sorted(n for n in taken if n is not None) == list(range(1, 26))
    assert await stores[0].quota_used(["hourly:0"]) == {"hourly:0": 25}


async def test_a_restart_keeps_what_was_used(open_state: StateFactory) -> None:
    state = await open_state()
    for _ in range(2):
        await state.take_quota("hourly:0", 2, 3600.0)
    await state.close()
    again = await open_state()
    assert await again.take_quota("hourly:0", 2, 3600.0) is None


async def test_windows_long_gone_are_forgotten(open_state: StateFactory) -> None:
    state = await open_state()
    await state.take_quota("hourly:0", 5, 3600.0)
    await state.take_quota(f"hourly:{int(QUOTA_KEPT)}", 5, QUOTA_KEPT + 3600.0)
    assert await state.quota_used(["hourly:0"]) == {"hourly:0": 1}
    await state.take_quota(f"hourly:{int(QUOTA_KEPT) + 7200}", 5, QUOTA_KEPT + 10800.0)
    assert await state.quota_used(["hourly:0"]) == {}
