"""Catalog items and the rules their names, ids and fields follow.

A catalog is a named set of objects (`products`, `articles`, ...), each an id and a JSON object
of fields. Whatever writes an item (the admin API, a bulk import) checks it here first, so a
store only ever holds items that templates can read and that derived events can rely on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from mailpulse.types import Event

CATALOG_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Letters, digits and the punctuation SKUs use; never '/', whitespace or control characters,
# so an id reads the same in a URL path, in a contact key (`object:<catalog>:<id>`) and in a
# log line.
ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+~-]{0,127}")
CATALOG_NAME_RULE = "1 to 64 characters: lowercase letters, digits and '_', starting with a letter"
ITEM_ID_RULE = (
    "1 to 128 characters: letters, digits and . _ : @ + ~ -, starting with a letter or digit"
)

MAX_FIELDS = 200
MAX_FIELD_NAME = 64
MAX_DEPTH = 32
MAX_ITEM_BYTES = 64 * 1024  # one item's fields, encoded as JSON
MAX_BULK_ITEMS = 1000

# Fields the catalog itself reads (to derive events); everything else is the shop's own.
PRICE = "price"
STOCK = "stock"
IN_STOCK = "in_stock"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

encode = msgspec.json.Encoder().encode


class CatalogError(ValueError):
    """Bad input for the catalog: `reason` says what is wrong, `where` names the field."""

    def __init__(self, reason: str, where: str | None = None) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.where = where


class CatalogItem(msgspec.Struct, kw_only=True, frozen=True):
    """One object of a catalog as stored: `updated_at` (epoch seconds) changes whenever its
    fields do, and only then."""

    catalog: str
    id: str
    fields: dict[str, Any]
    updated_at: float


_decode_fields = msgspec.json.Decoder(dict[str, Any]).decode


def stored_item(catalog: str, item_id: str, fields: bytes, updated_at: float) -> CatalogItem:
    """An item as a store row holds it: its fields as encoded JSON."""
    return CatalogItem(
        catalog=catalog, id=item_id, fields=_decode_fields(fields), updated_at=updated_at
    )


class Upserted(msgspec.Struct, kw_only=True, frozen=True):
    """What one upsert did to one item: `changed` is False when the fields were already those
    (nothing written, `updated_at` kept); `events` are the events it derived (see
    mailpulse.catalog.derive), in the log or on their way to it."""

    item: CatalogItem
    changed: bool
    events: list[Event]


def check_catalog_name(name: Any, where: str = "catalog") -> str:
    if not isinstance(name, str) or not CATALOG_NAME.fullmatch(name):
        raise CatalogError(f"a catalog name is {CATALOG_NAME_RULE}; got {_shown(name)}", where)
    return name


def check_item_id(item_id: Any, where: str = "id") -> str:
    if not isinstance(item_id, str) or not ITEM_ID.fullmatch(item_id):
        raise CatalogError(f"an item id is {ITEM_ID_RULE}; got {_shown(item_id)}", where)
    return item_id


def check_fields(fields: Any, where: str = "fields") -> bytes:
    """The fields of one item encoded for storage, or a CatalogError naming the first bad
    one."""
    if not isinstance(fields, dict):
        raise CatalogError(
            f"an item's fields are a JSON object, not {_json_type(fields)}", where or None
        )
    if len(fields) > MAX_FIELDS:
        raise CatalogError(f"an item has at most {MAX_FIELDS} fields, not {len(fields)}", where)
    body = encode(fields)
    size = len(body)
    if size > MAX_ITEM_BYTES:
        raise CatalogError(
            f"an item's fields take at most {MAX_ITEM_BYTES} bytes as JSON, not {size}",
            where or None,
        )
    prefix = f"{where}." if where else ""
    for name, value in fields.items():
        _check_name(name, where)
        _check_value(value, f"{prefix}{name}", 1)
    _check_known(fields, prefix)
    return body


def _check_name(name: str, where: str) -> None:
    if not name or len(name) > MAX_FIELD_NAME or _CONTROL.search(name):
        raise CatalogError(
            f"a field name is 1 to {MAX_FIELD_NAME} printable characters; got {_shown(name)}",
            where or None,
        )
    if name.startswith("_"):
        raise CatalogError(
            f"field {name!r}: names starting with '_' cannot be read by templates", where or None
        )


def _check_value(value: Any, where: str, depth: int) -> None:
    # Iterative, never recursive: how deep a value goes is up to the sender.
    stack = [(value, where, depth)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict | list) and depth >= MAX_DEPTH:
            raise CatalogError(f"fields nest at most {MAX_DEPTH} levels deep", where)
        if isinstance(value, dict):
            stack += [(inner, f"{where}.{name}", depth + 1) for name, inner in value.items()]
        elif isinstance(value, list):
            stack += [(inner, f"{where}[{n}]", depth + 1) for n, inner in enumerate(value)]


def _check_known(fields: dict[str, Any], prefix: str) -> None:
    """The fields events are derived from must mean what the derivation reads into them."""
    if PRICE in fields and not _amount(fields[PRICE]):
        raise CatalogError(
            f"price is a number of at least 0, not {_shown(fields[PRICE])}", prefix + PRICE
        )
    if STOCK in fields and not _amount(fields[STOCK]):
        raise CatalogError(
            f"stock is a number of at least 0, not {_shown(fields[STOCK])}", prefix + STOCK
        )
    if IN_STOCK in fields and not isinstance(fields[IN_STOCK], bool):
        raise CatalogError(
            f"in_stock is true or false, not {_shown(fields[IN_STOCK])}", prefix + IN_STOCK
        )


def _amount(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, float) and math.isfinite(value) and value >= 0


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return _json_type(value)


def checked_items(
    catalog: str, items: Sequence[tuple[Any, Any]]
) -> list[tuple[str, dict[str, Any], bytes]]:
    """Every (id, fields) of one upsert checked, with the fields encoded for storage; the first
    problem raises CatalogError, its `where` naming the item by its place: `[3].fields.price`.
    An id may come more than once: the upsert applies the items in order."""
    check_catalog_name(catalog)
    if len(items) > MAX_BULK_ITEMS:
        raise CatalogError(f"at most {MAX_BULK_ITEMS} items at once, not {len(items)}")
    checked = []
    for n, (item_id, fields) in enumerate(items):
        check_item_id(item_id, f"[{n}].id")
        checked.append((item_id, fields, check_fields(fields, f"[{n}].fields")))
    return checked
