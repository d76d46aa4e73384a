"""The store contract runs against every implementation of the seam.

PostgreSQL runs it with one partition, the shape of the embedded store the contract was written
for; tests/store/test_postgres.py covers what partitions add.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mailpulse.store import EventLog, StateStore
from mailpulse.store.postgres import PostgresEventLog, PostgresStateStore
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore

LogFactory = Callable[[], Awaitable[EventLog]]
StateFactory = Callable[[], Awaitable[StateStore]]


@pytest.fixture(params=["sqlite", "postgres"])
async def open_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogFactory]:
    opened: list[EventLog] = []
    # Asked for only here, so that a run of the SQLite tests alone starts no PostgreSQL.
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else ""

    async def factory() -> EventLog:
        log: EventLog = (
            PostgresEventLog(dsn, partitions=1) if dsn else SqliteEventLog(tmp_path / "log.db")
        )
        await log.open()
        opened.append(log)
        return log

    yield factory
    for log in opened:
        await log.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def open_state(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateFactory]:
    opened: list[StateStore] = []
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else ""

    async def factory() -> StateStore:
        state: StateStore = (
            PostgresStateStore(dsn) if dsn else SqliteStateStore(tmp_path / "state.db")
        )
        await state.open()
        opened.append(state)
        return state

    yield factory
    for state in opened:
        await state.close()
