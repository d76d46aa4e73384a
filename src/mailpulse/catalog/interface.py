"""The catalog seam: a store of items, in SQLite (embedded) or PostgreSQL (scale-out).

The catalog is not derived state: nothing in the log rebuilds it, so a write is durable before
it returns, in either backend. Its derived events (see mailpulse.catalog.derive) are kept in
the same transaction as the item change, as pending, until they are in the log: an update is
never in the catalog without its events on their way to the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from mailpulse.catalog.model import CatalogItem, Upserted
from mailpulse.types import Event

ItemKey = tuple[str, str]  # (catalog, item id)


class CatalogUnavailable(Exception):
    """The catalog store cannot be reached now; nothing was changed."""


class CatalogReader(Protocol):
    """What a render needs: current items, looked up many at a time."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def get_many(self, keys: Sequence[ItemKey]) -> dict[ItemKey, CatalogItem]:
        """The items of `keys` that exist; the others are left out."""
        ...


class CatalogStore(CatalogReader, Protocol):
    # Where another process opens the same catalog (`open_reader`): a file path or a
    # postgresql:// URL.
    location: str

    async def upsert(
        self, catalog: str, items: Sequence[tuple[str, dict[str, Any]]], now: float
    ) -> list[Upserted]:
        """Set each (id, fields) of one catalog, in order, replacing the item's fields, all or
        nothing; CatalogError (nothing written) if any name, id or fields break the rules of
        mailpulse.catalog.model. Per item given: what changed and the events derived, which
        are kept as pending in the same transaction."""
        ...

    async def get(self, catalog: str, item_id: str) -> CatalogItem | None: ...
    async def delete(self, catalog: str, item_id: str) -> bool:
        """Whether there was such an item."""
        ...

    async def list_items(self, catalog: str, after: str, limit: int) -> list[CatalogItem]:
        """Up to `limit` items with ids after `after` (byte order), in id order."""
        ...

    async def pending_events(self, limit: int) -> list[Event]:
        """Derived events not yet known to be in the log, oldest first."""
        ...

    async def forget_events(self, message_ids: Sequence[str]) -> None:
        """They are in the log now."""
        ...
