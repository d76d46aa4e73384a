"""The catalog admin API: items such as products, upserted, read, listed and deleted.

    PUT    /admin/catalogs/{catalog}/items/{id}    the item's fields, a JSON object
    POST   /admin/catalogs/{catalog}/items         many at once: [{"id": ..., "fields": {...}}]
    GET    /admin/catalogs/{catalog}/items/{id}
    GET    /admin/catalogs/{catalog}/items?after=&limit=   in id order, `next` for the page after
    DELETE /admin/catalogs/{catalog}/items/{id}

A write replaces the item's fields. A request with anything wrong in it (a bad catalog name or
id, fields that are not an object, `price` that is not a number, ...) is refused whole with a
400 whose `where` names the field, and changes nothing. An answer of 200 means the items are
durable, with the events they derived (see mailpulse.catalog.derive) in the log, or, when
`events_pending` says so, kept with them and on their way there.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import msgspec
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS, ErrorBody
from mailpulse.catalog import CatalogError, CatalogItem, Catalogs, CatalogUnavailable, Upserted
from mailpulse.catalog.model import (
    CATALOG_NAME_RULE,
    ITEM_ID,
    ITEM_ID_RULE,
    MAX_BULK_ITEMS,
    MAX_ITEM_BYTES,
    check_catalog_name,
    check_fields,
    check_item_id,
)

T = TypeVar("T")

# Room for the whitespace of pretty-printed JSON; the fields themselves are held to
# MAX_ITEM_BYTES once compacted.
MAX_PUT_BYTES = 2 * MAX_ITEM_BYTES
MAX_BULK_BYTES = 8 * 1024 * 1024

_CATALOG_PATTERN = "^[a-z][a-z0-9_]{0,63}$"
_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:@+~-]{0,127}$"


class ItemOut(BaseModel):
    catalog: str
    id: str
    fields: dict[str, Any]
    updated_at: float


class UpsertOut(ItemOut):
    """The item as it is now; `changed` is false when it already had these fields."""

    changed: bool
    events: list[str]  # the names of the events the change derived
    events_pending: bool = False


class BulkOut(BaseModel):
    items: list[UpsertOut]
    events_pending: bool = False


class ItemsOut(BaseModel):
    catalog: str
    items: list[ItemOut]
    next: str | None  # pass as `after` for the next page; null on the last one


_FIELDS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "The item's fields; price and stock, when given, are numbers of at least 0, and "
        "in_stock true or false."
    ),
    "properties": {
        "price": {"type": "number", "minimum": 0},
        "stock": {"type": "number", "minimum": 0},
        "in_stock": {"type": "boolean"},
    },
    "propertyNames": {
        "minLength": 1,
        "maxLength": 64,
        "pattern": "^[^_\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*$",
    },
    "maxProperties": 200,
}
_BULK_SCHEMA: dict[str, Any] = {
    "type": "array",
    "maxItems": MAX_BULK_ITEMS,
    "items": {
        "type": "object",
        "required": ["id", "fields"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": _ID_PATTERN},
            "fields": _FIELDS_SCHEMA,
        },
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _error(status: int, message: str, where: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "where": where}, status_code=status)


class _Refused(Exception):
    def __init__(self, status: int, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.where = status, message, where


async def _answer(work: Awaitable[T]) -> T | JSONResponse:
    try:
        return await work
    except _Refused as r:
        return _error(r.status, r.message, r.where)
    except CatalogError as exc:
        return _error(400, exc.reason, exc.where or "body")
    except CatalogUnavailable as exc:
        return _error(503, f"the catalog is unavailable; nothing was changed: {exc}")


async def _json_body(request: Request, cap: int) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _Refused(413, f"the request body is {declared} bytes; at most {cap} are allowed")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise _Refused(413, f"the request body exceeds {cap} bytes")
        chunks.append(chunk)
    try:
        return msgspec.json.decode(b"".join(chunks))
    except msgspec.DecodeError as exc:
        raise _Refused(400, f"the body is not valid JSON: {exc}", "body") from exc
    except RecursionError as exc:
        raise _Refused(400, "the body nests too deep", "body") from exc


def _bulk_items(body: Any) -> list[tuple[Any, Any]]:
    if not isinstance(body, list):
        raise _Refused(400, 'the body is a JSON array of {"id": ..., "fields": {...}}', "body")
    if len(body) > MAX_BULK_ITEMS:
        raise _Refused(400, f"at most {MAX_BULK_ITEMS} items at once, not {len(body)}", "body")
    items = []
    for n, entry in enumerate(body):
        if not isinstance(entry, dict):
            raise _Refused(400, 'an item is {"id": ..., "fields": {...}}', f"[{n}]")
        for key in ("id", "fields"):
            if key not in entry:
                raise _Refused(400, f"the item has no {key}", f"[{n}].{key}")
        for key in entry:
            if key not in ("id", "fields"):
                raise _Refused(
                    400, 'unknown key: an item is {"id": ..., "fields": {...}}', f"[{n}].{key}"
                )
        items.append((entry["id"], entry["fields"]))
    return items


def _item_out(item: CatalogItem) -> ItemOut:
    return ItemOut(catalog=item.catalog, id=item.id, fields=item.fields, updated_at=item.updated_at)


def _upsert_out(result: Upserted, pending: bool) -> UpsertOut:
    item = result.item
    return UpsertOut(
        catalog=item.catalog,
        id=item.id,
        fields=item.fields,
        updated_at=item.updated_at,
        changed=result.changed,
        events=[ev.event or "" for ev in result.events],
        events_pending=pending and bool(result.events),
    )


def catalogs_router(catalogs: Catalogs | None) -> APIRouter:
    """`catalogs` None (a pipeline on a store with no catalog beside it): every call is 503."""
    router = APIRouter(
        prefix="/admin/catalogs", tags=["catalogs"], dependencies=[Depends(require_admin)]
    )
    unavailable = {503: {"model": ErrorBody, "description": "The catalog is unavailable."}}
    not_found = {404: {"model": ErrorBody, "description": "No such item."}}
    too_large = {413: {"model": ErrorBody, "description": "The request body is too large."}}
    catalog_path = Path(
        description=f"The catalog: {CATALOG_NAME_RULE}.",
        json_schema_extra={"pattern": _CATALOG_PATTERN},
    )
    id_path = Path(
        description=f"The item's id: {ITEM_ID_RULE}.",
        json_schema_extra={"pattern": _ID_PATTERN},
    )

    def store() -> Catalogs:
        if catalogs is None:
            raise CatalogUnavailable("no catalog store is configured for this server")
        return catalogs

    def named(catalog: str, item_id: str | None = None) -> None:
        check_catalog_name(catalog)
        if item_id is not None:
            check_item_id(item_id)

    @router.put(
        "/{catalog}/items/{item_id}",
        response_model=UpsertOut,
        responses={**ERRORS, **too_large, **unavailable},
        openapi_extra=_body(_FIELDS_SCHEMA),
    )
    async def put_item(
        request: Request, catalog: str = catalog_path, item_id: str = id_path
    ) -> UpsertOut | JSONResponse:
        """Create the item or replace its fields."""

        async def work() -> UpsertOut:
            named(catalog, item_id)
            fields = await _json_body(request, MAX_PUT_BYTES)
            check_fields(fields, "")
            results, shipped = await store().upsert(catalog, [(item_id, fields)])
            return _upsert_out(results[0], not shipped)

        return await _answer(work())

    @router.post(
        "/{catalog}/items",
        response_model=BulkOut,
        responses={**ERRORS, **too_large, **unavailable},
        openapi_extra=_body(_BULK_SCHEMA),
    )
    async def put_items(request: Request, catalog: str = catalog_path) -> BulkOut | JSONResponse:
        """Create or replace many items of one catalog at once, all or none."""

        async def work() -> BulkOut:
            named(catalog)
            items = _bulk_items(await _json_body(request, MAX_BULK_BYTES))
            results, shipped = await store().upsert(catalog, items)
            pending = not shipped
            return BulkOut(
                items=[_upsert_out(r, pending) for r in results],
                events_pending=pending and any(r.events for r in results),
            )

        return await _answer(work())

    @router.get(
        "/{catalog}/items/{item_id}",
        response_model=ItemOut,
        responses={**ERRORS, **not_found, **unavailable},
    )
    async def get_item(
        catalog: str = catalog_path, item_id: str = id_path
    ) -> ItemOut | JSONResponse:
        async def work() -> ItemOut:
            named(catalog, item_id)
            item = await store().store.get(catalog, item_id)
            if item is None:
                raise _Refused(404, f"no item {item_id!r} in catalog {catalog!r}")
            return _item_out(item)

        return await _answer(work())

    @router.get("/{catalog}/items", response_model=ItemsOut, responses={**ERRORS, **unavailable})
    async def list_items(
        catalog: str = catalog_path,
        after: str = Query(
            "",
            max_length=128,
            description="The last id of the page before; empty for the first page.",
            json_schema_extra={"pattern": f"^$|{_ID_PATTERN}"},
        ),
        limit: int = Query(100, ge=1, le=1000),
    ) -> ItemsOut | JSONResponse:
        """A page of the catalog's items, in id order (bytewise)."""

        async def work() -> ItemsOut:
            named(catalog)
            if after and not ITEM_ID.fullmatch(after):
                raise CatalogError(f"after is an item id ({ITEM_ID_RULE}) or empty", "after")
            items = await store().store.list_items(catalog, after, limit)
            return ItemsOut(
                catalog=catalog,
                items=[_item_out(item) for item in items],
                next=items[-1].id if len(items) == limit else None,
            )

        return await _answer(work())

    @router.delete(
        "/{catalog}/items/{item_id}",
        status_code=204,
        response_class=Response,
        responses={**ERRORS, **not_found, **unavailable},
    )
    async def delete_item(catalog: str = catalog_path, item_id: str = id_path) -> Response:
        """Templates find the item missing from now on; no event is derived."""

        async def work() -> Response:
            named(catalog, item_id)
            if not await store().store.delete(catalog, item_id):
                raise _Refused(404, f"no item {item_id!r} in catalog {catalog!r}")
            return Response(status_code=204)

        answered = await _answer(work())
        return answered

    return router
