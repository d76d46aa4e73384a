"""Catalog updates sent as events: a `Catalog Item Updated` track call, from a server.

```json
{"type": "track", "anonymousId": "catalog-feed", "event": "Catalog Item Updated",
 "properties": {"catalog": "products", "id": "sku-1", "fields": {"price": 79, "stock": 4}}}
```

Only a key of `[project] server_write_keys` may send one: write keys ship inside web pages,
and whoever reads one there could otherwise set a price to 0 and have every watcher mailed a
Price Dropped. Such an update is not history of anyone: it is applied to the catalog (which
derives Price Dropped and Back In Stock, as an update over the admin API does) and not kept
in the log. A request with a bad one changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mailpulse.catalog import CatalogError
from mailpulse.catalog.model import (
    MAX_BULK_ITEMS,
    check_catalog_name,
    check_fields,
    check_item_id,
)
from mailpulse.types import Event, EventType

CATALOG_ITEM_UPDATED = "Catalog Item Updated"

# (catalog, [(id, fields)]) for each run of updates to one catalog, in request order.
UpsertFn = Callable[[str, Sequence[tuple[str, dict[str, Any]]]], Awaitable[object]]


class CatalogEventError(Exception):
    def __init__(self, status: int, error: str, where: str | None = None) -> None:
        self.status, self.error, self.where = status, error, where


def is_catalog_update(event: Event) -> bool:
    return event.type == EventType.TRACK and event.event == CATALOG_ITEM_UPDATED


def catalog_updates(
    events: Sequence[Event], from_server: bool, batch: bool
) -> list[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """The catalog updates of a request, checked before any is applied: 403 unless sent with
    a server key, 400 naming the bad field of a bad one, or too many for one catalog."""
    updates: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
    for index, event in enumerate(events):
        if not is_catalog_update(event):
            continue
        if not from_server:
            raise CatalogEventError(
                403,
                f"{CATALOG_ITEM_UPDATED} changes the catalog: send it with a server write key "
                "([project] server_write_keys), never with a key that a web page holds",
            )
        prefix = f"batch[{index}].properties" if batch else "properties"
        props = event.properties
        try:
            catalog = check_catalog_name(props.get("catalog"), f"{prefix}.catalog")
            item_id = check_item_id(props.get("id"), f"{prefix}.id")
            check_fields(props.get("fields"), f"{prefix}.fields")
        except CatalogError as error:
            raise CatalogEventError(400, error.reason, error.where) from error
        if updates and updates[-1][0] == catalog and len(updates[-1][1]) < MAX_BULK_ITEMS:
            updates[-1][1].append((item_id, props["fields"]))
        else:
            updates.append((catalog, [(item_id, props["fields"])]))
    return updates
