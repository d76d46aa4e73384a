"""Events an item update derives: `Price Dropped` and `Back In Stock`.

An upsert that changes an existing item compares its old and new fields:

- `Price Dropped`: `price` was a number and is now a lower one.
- `Back In Stock`: `stock` went from 0 to more than 0, or else `in_stock` from false to true.

A new item derives nothing (nobody can have been waiting for it), and neither does a delete.
Each derived event is a track event about the object, shaped like this:

    Event(
        type="track",
        event="Price Dropped",                       # or "Back In Stock"
        contact_key="object:products:sku-1",         # object:<catalog>:<id>
        message_id="mp-catalog-<32 hex digits>",     # from catalog, id, updated_at and name
        properties={
            "catalog": "products",
            "id": "sku-1",
            "old_price": 89.0, "new_price": 79.0,    # Back In Stock: old_stock / new_stock,
        },                                           # or old_in_stock / new_in_stock
        context={"library": {"name": "mailpulse"}},
        timestamp=updated_at, received_at=updated_at,
    )

No userId or anonymousId: the event is about an object, not a contact. The fold sends it on
to the contacts interested in that object (see mailpulse.audience.interests, which reads the
`object:` contact key). The message id derives from the update itself, so shipping the same
update's events twice (a retry after a crash) adds them to the log once.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from mailpulse.catalog.model import IN_STOCK, PRICE, STOCK, CatalogItem, Upserted, stored_item
from mailpulse.types import Event, EventType, object_key

PRICE_DROPPED = "Price Dropped"
BACK_IN_STOCK = "Back In Stock"


def derived_message_id(catalog: str, item_id: str, updated_at: float, name: str) -> str:
    digest = hashlib.sha256(f"{catalog}\0{item_id}\0{updated_at!r}\0{name}".encode())
    return f"mp-catalog-{digest.hexdigest()[:32]}"


def derive(old: CatalogItem | None, new: CatalogItem) -> list[Event]:
    """The events taking `old` to `new` derives; none for a new item."""
    if old is None:
        return []
    events = []
    before, after = old.fields.get(PRICE), new.fields.get(PRICE)
    if _number(before) and _number(after) and after < before:
        events.append(_event(new, PRICE_DROPPED, PRICE, before, after))
    restocked = _restocked(old.fields, new.fields)
    if restocked is not None:
        events.append(_event(new, BACK_IN_STOCK, *restocked))
    return events


def _restocked(before: dict[str, Any], after: dict[str, Any]) -> tuple[str, Any, Any] | None:
    """(field, old value, new value) of the field that says the item is back, if one does."""
    old, new = before.get(STOCK), after.get(STOCK)
    if _number(old) and _number(new) and old <= 0 < new:
        return STOCK, old, new
    old, new = before.get(IN_STOCK), after.get(IN_STOCK)
    if old is False and new is True:
        return IN_STOCK, old, new
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _event(item: CatalogItem, name: str, field: str, old: Any, new: Any) -> Event:
    return Event(
        type=EventType.TRACK,
        message_id=derived_message_id(item.catalog, item.id, item.updated_at, name),
        contact_key=object_key(item.catalog, item.id),
        event=name,
        properties={
            "catalog": item.catalog,
            "id": item.id,
            f"old_{field}": old,
            f"new_{field}": new,
        },
        context={"library": {"name": "mailpulse"}},
        timestamp=item.updated_at,
        received_at=item.updated_at,
    )


class Plan(msgspec.Struct, kw_only=True):
    """What one upsert writes, worked out from the items as they were."""

    results: list[Upserted]
    writes: list[tuple[str, bytes, float]]  # (id, encoded fields, updated_at)
    events: list[Event]


def plan_upsert(
    catalog: str,
    items: Sequence[tuple[str, dict[str, Any], bytes]],
    before: Mapping[str, tuple[bytes, float]],
    now: float,
) -> Plan:
    """Both backends' upsert: `items` as `checked_items` gives them, `before` the stored
    (encoded fields, updated_at) of those that exist. Fields equal to the stored ones change
    nothing; otherwise `updated_at` is now, or just after the stored one if the clock went
    back, so that it (and the derived message ids) is new for every change. Items apply in
    order: an id that comes again derives from what it was given the time before, and
    `writes` holds each id once, as it ends up."""
    plan = Plan(results=[], writes=[], events=[])
    current = dict(before)
    last: dict[str, tuple[bytes, float]] = {}
    for item_id, fields, body in items:
        stored = current.get(item_id)
        if stored is not None and stored[0] == body:
            item = CatalogItem(catalog=catalog, id=item_id, fields=fields, updated_at=stored[1])
            plan.results.append(Upserted(item=item, changed=False, events=[]))
            continue
        old = None
        at = now
        if stored is not None:
            old = stored_item(catalog, item_id, stored[0], stored[1])
            at = max(now, math.nextafter(stored[1], math.inf))
        item = CatalogItem(catalog=catalog, id=item_id, fields=fields, updated_at=at)
        derived = derive(old, item)
        plan.results.append(Upserted(item=item, changed=True, events=derived))
        plan.events += derived
        current[item_id] = last[item_id] = (body, at)
    plan.writes = [(item_id, body, at) for item_id, (body, at) in last.items()]
    return plan
