"""The catalog contract runs against both stores: a real SQLite file and a real PostgreSQL
database (see tests/conftest.py for where the server comes from)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from mailpulse.catalog import CatalogReader, CatalogStore, catalog_reader, catalog_store

CatalogFactory = Callable[[], Awaitable[CatalogStore]]
ReaderFactory = Callable[[], Awaitable[CatalogReader]]


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    # Asked for only here, so that a run of the SQLite tests alone starts no PostgreSQL.
    if request.param == "postgres":
        return request.getfixturevalue("postgres_dsn")
    return str(tmp_path / "catalog.db")


@pytest.fixture
async def open_catalog(catalog_location: str) -> AsyncIterator[CatalogFactory]:
    """Opens the store; call again for a second one on the same data (another API node, or the
    same one after a restart)."""
    opened: list[CatalogStore] = []

    async def factory() -> CatalogStore:
        store = catalog_store(catalog_location)
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def open_reader(catalog_location: str) -> AsyncIterator[ReaderFactory]:
    """What the courier process opens: a reader on the same location."""
    opened: list[CatalogReader] = []

    async def factory() -> CatalogReader:
        reader = catalog_reader(catalog_location)
        await reader.open()
        opened.append(reader)
        return reader

    yield factory
    for reader in opened:
        await reader.close()
