"""Catalogs: objects such as products, current at send time.

Items are upserted over the admin API (mailpulse.api.catalogs) into a `CatalogStore`
(SQLite embedded, PostgreSQL scale-out); templates read them as they are when a message is made
(`catalog("products", id)`, see `lookup`); and an update that lowers a price or brings an item
back in stock derives `Price Dropped` / `Back In Stock` events for the log (see `derive`).
"""

from mailpulse.catalog.derive import BACK_IN_STOCK, PRICE_DROPPED, derive, object_key
from mailpulse.catalog.interface import CatalogReader, CatalogStore, CatalogUnavailable, ItemKey
from mailpulse.catalog.locate import catalog_reader, catalog_store
from mailpulse.catalog.model import CatalogError, CatalogItem, Upserted
from mailpulse.catalog.service import Catalogs

__all__ = [
    "BACK_IN_STOCK",
    "PRICE_DROPPED",
    "CatalogError",
    "CatalogItem",
    "CatalogReader",
    "CatalogStore",
    "CatalogUnavailable",
    "Catalogs",
    "ItemKey",
    "Upserted",
    "catalog_reader",
    "catalog_store",
    "derive",
    "object_key",
]
