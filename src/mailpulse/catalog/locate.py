"""A catalog named by its location: a SQLite file path, or a postgresql:// URL.

The location is how a process that did not build the store (the courier's) opens the same
catalog; see `CatalogStore.location`.
"""

from __future__ import annotations

from pathlib import Path

from mailpulse.catalog.interface import CatalogReader, CatalogStore


def _is_postgres(location: str) -> bool:
    return location.startswith(("postgres://", "postgresql://"))


def catalog_store(location: str) -> CatalogStore:
    if _is_postgres(location):
        from mailpulse.catalog.postgres import PostgresCatalogStore

        return PostgresCatalogStore(location)
    from mailpulse.catalog.sqlite import SqliteCatalogStore

    return SqliteCatalogStore(Path(location))


def catalog_reader(location: str) -> CatalogReader:
    """For reading only, from any process: a small pool, or a read-only file connection,
    either made on first use."""
    if _is_postgres(location):
        from mailpulse.catalog.postgres import PostgresCatalogReader

        return PostgresCatalogReader(location)
    from mailpulse.catalog.sqlite import SqliteCatalogReader

    return SqliteCatalogReader(Path(location))
