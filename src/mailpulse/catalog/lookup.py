"""`catalog(name, id)` in templates: an item's fields as they are when the message is made.

    {% set product = catalog("products", item.product_id) %}
    {{ product.price | default(item.price) }}

The function returns the item's fields (a dict), or an empty dict when there is no such item,
when the name or id cannot be one (`catalog("products", None)`), or when no catalog is wired
in (a preview): `{% if product %}` tells them apart and `| default(...)` falls back, so a
template written for the catalog still renders from the event alone.

Rendering stays synchronous, and the items are fetched for each message, never cached: a render
runs with the items fetched so far and notes the ones it asked for that were not; if there
were any, they are fetched (one `get_many`, whatever their number) and the template renders
again, until nothing new is asked for. A template that looks nothing up renders once, as
before; one that looks up the lines of a cart renders twice around one round trip. A render
that depends on an item to know which other item to ask for may need a third; after
`MAX_ROUNDS` whatever is still unknown counts as missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mailpulse.catalog.interface import CatalogReader, ItemKey
from mailpulse.catalog.model import CATALOG_NAME, ITEM_ID
from mailpulse.errors import RenderError

MAX_ROUNDS = 3
MAX_ITEMS = 200  # distinct items one message may look up


class NeedItems(Exception):
    """A render asked for catalog items it was not given: fetch them and render again."""

    def __init__(self, keys: set[ItemKey]) -> None:
        super().__init__(f"{len(keys)} catalog items to fetch")
        self.keys = keys


def item_key(catalog: Any, item_id: Any) -> ItemKey | None:
    """What a template's arguments name; None when they cannot name an item. Ids arrive from
    event properties, so a whole number names the item whose id is its digits."""
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    if (
        isinstance(catalog, str)
        and isinstance(item_id, str)
        and CATALOG_NAME.fullmatch(catalog)
        and ITEM_ID.fullmatch(item_id)
    ):
        return catalog, item_id
    return None


class RenderCatalog:
    """The `catalog` function of one render: the fields fetched for it (an empty dict for an
    item known to be missing) and, when `asking`, the keys it wanted and did not have."""

    __slots__ = ("_asking", "_fields", "missing")

    def __init__(self, fields: dict[ItemKey, dict[str, Any]], *, asking: bool) -> None:
        self._fields = fields
        self._asking = asking
        self.missing: set[ItemKey] = set()

    def __call__(self, catalog: Any = None, item_id: Any = None) -> dict[str, Any]:
        key = item_key(catalog, item_id)
        if key is None:
            return {}
        found = self._fields.get(key)
        if found is not None:
            return found
        if self._asking and key not in self.missing:
            if len(self._fields) + len(self.missing) >= MAX_ITEMS:
                raise RenderError(f"a message may look up at most {MAX_ITEMS} catalog items")
            self.missing.add(key)
        return {}


async def fetch_fields(
    reader: CatalogReader, keys: Iterable[ItemKey], into: dict[ItemKey, dict[str, Any]]
) -> None:
    """Fetch the items of `keys` now, into the fields a render looks them up in."""
    wanted = sorted(keys)
    found = await reader.get_many(wanted)
    for key in wanted:
        item = found.get(key)
        into[key] = item.fields if item is not None else {}
