"""The access contract runs against both stores: a real SQLite file and a real PostgreSQL
database (see tests/conftest.py for where the server comes from)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mailpulse.access import AccessStore, SqliteAccessStore
from mailpulse.access.postgres import PostgresAccessStore

AccessFactory = Callable[[], Awaitable[AccessStore]]


@pytest.fixture(params=["sqlite", "postgres"])
async def open_access(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AccessFactory]:
    """Opens the store; call again for a second one on the same data (another API node, or the
    same one after a restart)."""
    # Asked for only here, so that a run of the SQLite tests alone starts no PostgreSQL.
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else ""
    opened: list[AccessStore] = []

    async def factory() -> AccessStore:
        store: AccessStore = (
            PostgresAccessStore(dsn) if dsn else SqliteAccessStore(tmp_path / "access.db")
        )
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
