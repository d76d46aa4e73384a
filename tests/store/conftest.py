"""The store contract runs against every implementation of the seam.

Only SQLite exists today; a PostgreSQL implementation joins the `params` below.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mailpulse.store import EventLog, StateStore
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore

LogFactory = Callable[[], Awaitable[EventLog]]
StateFactory = Callable[[], Awaitable[StateStore]]


@pytest.fixture(params=["sqlite"])
async def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogFactory]:
    opened: list[EventLog] = []

    async def factory() -> EventLog:
        log = SqliteEventLog(tmp_path / "log.db")
        await log.open()
        opened.append(log)
        return log

    yield factory
    for log in opened:
        await log.close()


@pytest.fixture(params=["sqlite"])
async def open_state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateFactory]:
    opened: list[StateStore] = []

    async def factory() -> StateStore:
        state = SqliteStateStore(tmp_path / "state.db")
        await state.open()
        opened.append(state)
        return state

    yield factory
    for state in opened:
        await state.close()
