"""The catalog admin API on a real embedded pipeline: writes, reads, pages and deletes; derived
events in the log; and every kind of bad request refused with the field named, changing
nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailpulse.api import create_app
from mailpulse.catalog import PRICE_DROPPED, CatalogUnavailable
from mailpulse.catalog.model import MAX_BULK_ITEMS, MAX_FIELDS, MAX_ITEM_BYTES
from mailpulse.project import load_project
from mailpulse.runtime.courier import Delivered
from mailpulse.runtime.pipeline import Pipeline
from mailpulse.store import LogUnavailable
from mailpulse.types import Event, SendIntent
from tests.e2e.conftest import ADMIN_KEY, write_project

ITEMS = "/admin/catalogs/products/items"


class NoCourier:
    """The send leg is not under test here."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def prepare(self, intent: SendIntent) -> None: ...

    def submit(self, intent: SendIntent) -> Awaitable[Delivered]:
        raise AssertionError("nothing is sent in these tests")


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    project = load_project(write_project(tmp_path / "project", 2525))
    pipeline = Pipeline.embedded(project, tmp_path / "data", courier=NoCourier())
    await pipeline.start()
    yield pipeline
    await pipeline.stop()


@pytest.fixture
async def admin(pipeline: Pipeline) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(pipeline))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://mailpulse.test",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ) as client:
        yield client


async def log_events(pipeline: Pipeline) -> list[Event]:
    return await pipeline.log.read(0, 1000)


async def test_put_get_and_put_again(admin: httpx.AsyncClient, pipeline: Pipeline) -> None:
    r = await admin.put(f"{ITEMS}/sku-1", json={"price": 89.0, "stock": 3, "name": "Sweater"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["changed"] is True and body["events"] == [] and not body["events_pending"]
    assert body["fields"] == {"price": 89.0, "stock": 3, "name": "Sweater"}
    created = body["updated_at"]

    r = await admin.get(f"{ITEMS}/sku-1")
    assert r.status_code == 200
    assert r.json() == {
        "catalog": "products",
        "id": "sku-1",
        "fields": {"price": 89.0, "stock": 3, "name": "Sweater"},
        "updated_at": created,
    }

    # The same again (a retried request): nothing changes, nothing is derived.
    r = await admin.put(f"{ITEMS}/sku-1", json={"price": 89.0, "stock": 3, "name": "Sweater"})
    assert r.json()["changed"] is False and r.json()["updated_at"] == created
    assert await log_events(pipeline) == []


async def test_a_lower_price_puts_price_dropped_in_the_log(
    admin: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    await admin.put(f"{ITEMS}/sku-1", json={"price": 89.0})
    r = await admin.put(f"{ITEMS}/sku-1", json={"price": 79.0})
    assert r.json()["events"] == [PRICE_DROPPED] and not r.json()["events_pending"]
    [event] = await log_events(pipeline)
    assert event.event == PRICE_DROPPED and event.contact_key == "object:products:sku-1"
    assert event.properties == {
        "catalog": "products",
        "id": "sku-1",
        "old_price": 89.0,
        "new_price": 79.0,
    }
    assert await pipeline.catalogs.store.pending_events(10) == []  # type: ignore[union-attr]


async def test_with_the_log_down_the_write_stands_and_its_events_follow(
    admin: httpx.AsyncClient, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    await admin.put(f"{ITEMS}/sku-1", json={"in_stock": False})
    catalogs = pipeline.catalogs
    assert catalogs is not None
    real_append = catalogs._append

    async def down(events: Any) -> list[Event]:
        raise LogUnavailable("disk full")

    monkeypatch.setattr(catalogs, "_append", down)
    r = await admin.put(f"{ITEMS}/sku-1", json={"in_stock": True})
    assert r.status_code == 200
    assert r.json()["events"] == ["Back In Stock"] and r.json()["events_pending"] is True
    assert await log_events(pipeline) == []
    monkeypatch.setattr(catalogs, "_append", real_append)
    assert await catalogs.ship_pending() == 1
    assert [ev.event for ev in await log_events(pipeline)] == ["Back In Stock"]


async def test_bulk_writes_then_pages_and_deletes(admin: httpx.AsyncClient) -> None:
    items = [{"id": f"sku-{n:02}", "fields": {"price": n, "stock": 0}} for n in range(5)]
    r = await admin.post(ITEMS, json=items)
    assert r.status_code == 200, r.text
    assert [i["id"] for i in r.json()["items"]] == [f"sku-{n:02}" for n in range(5)]
    assert all(i["changed"] for i in r.json()["items"])

    # Lower two prices, restock one, leave the rest: each item says what it derived.
    changes = [
        {"id": "sku-03", "fields": {"price": 2, "stock": 0}},
        {"id": "sku-04", "fields": {"price": 4, "stock": 1}},
        {"id": "sku-00", "fields": {"price": 0, "stock": 0}},
    ]
    r = await admin.post(ITEMS, json=changes)
    assert [(i["id"], i["changed"], i["events"]) for i in r.json()["items"]] == [
        ("sku-03", True, ["Price Dropped"]),
        ("sku-04", True, ["Back In Stock"]),
        ("sku-00", False, []),
    ]

    r = await admin.get(ITEMS, params={"limit": 2})
    page = r.json()
    assert [i["id"] for i in page["items"]] == ["sku-00", "sku-01"]
    assert page["next"] == "sku-01"
    r = await admin.get(ITEMS, params={"limit": 2, "after": page["next"]})
    assert [i["id"] for i in r.json()["items"]] == ["sku-02", "sku-03"]
    r = await admin.get(ITEMS, params={"limit": 2, "after": "sku-03"})
    assert [i["id"] for i in r.json()["items"]] == ["sku-04"] and r.json()["next"] is None

    assert (await admin.delete(f"{ITEMS}/sku-04")).status_code == 204
    r = await admin.delete(f"{ITEMS}/sku-04")
    assert r.status_code == 404 and "sku-04" in r.json()["error"]
    r = await admin.get(f"{ITEMS}/sku-04")
    assert r.status_code == 404 and "no item 'sku-04'" in r.json()["error"]
    assert (await admin.get("/admin/catalogs/articles/items")).json()["items"] == []


async def test_the_admin_key_is_needed(admin: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        r = await admin.put(f"{ITEMS}/sku-1", json={"price": 1}, headers=headers)
        assert r.status_code == 401 and "Bearer" in r.json()["error"]
        r = await admin.get(f"{ITEMS}/sku-1", headers=headers)
        assert r.status_code == 401


def _deep(levels: int) -> dict[str, Any]:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


BAD_PUTS: list[tuple[str, Any, int, str | None, str]] = [
    # (path after /admin/catalogs/, body, status, where, in the reason)
    ("Products/items/sku-1", {"price": 1}, 400, "catalog", "lowercase"),
    ("pro-ducts/items/sku-1", {"price": 1}, 400, "catalog", "catalog name"),
    ("products/items/-sku", {"price": 1}, 400, "id", "item id"),
    ("products/items/sku%201", {"price": 1}, 400, "id", "item id"),
    ("products/items/" + "x" * 129, {"price": 1}, 400, "id", "128"),
    ("products/items/sku-1", [1, 2], 400, "body", "JSON object"),
    ("products/items/sku-1", "text", 400, "body", "JSON object"),
    ("products/items/sku-1", {"price": "9.99"}, 400, "price", "number"),
    ("products/items/sku-1", {"price": -1}, 400, "price", "at least 0"),
    ("products/items/sku-1", {"price": True}, 400, "price", "number"),
    ("products/items/sku-1", {"price": None}, 400, "price", "number"),
    ("products/items/sku-1", {"stock": "3"}, 400, "stock", "number"),
    ("products/items/sku-1", {"in_stock": "yes"}, 400, "in_stock", "true or false"),
    ("products/items/sku-1", {"_secret": 1}, 400, "body", "'_'"),
    ("products/items/sku-1", {"": 1}, 400, "body", "field name"),
    ("products/items/sku-1", {f"f{n}": n for n in range(MAX_FIELDS + 1)}, 400, "body", "fields"),
    ("products/items/sku-1", {"nested": _deep(40)}, 400, "nested" + ".a" * 31, "levels"),
    ("products/items/sku-1", {"blob": "x" * MAX_ITEM_BYTES}, 400, "body", "bytes"),
    ("products/items/sku-1", {"blob": "x" * (3 * MAX_ITEM_BYTES)}, 413, None, "at most"),
]


@pytest.mark.parametrize(("path", "body", "status", "where", "reason"), BAD_PUTS)
async def test_a_bad_put_is_refused_naming_the_field(
    admin: httpx.AsyncClient,
    pipeline: Pipeline,
    path: str,
    body: Any,
    status: int,
    where: str | None,
    reason: str,
) -> None:
    r = await admin.put(f"/admin/catalogs/{path}", json=body)
    assert r.status_code == status, r.text
    assert r.json()["where"] == where
    assert reason in r.json()["error"]
    assert (await admin.get(ITEMS)).json()["items"] == []
    assert await log_events(pipeline) == []


async def test_a_body_that_is_not_json_is_refused(admin: httpx.AsyncClient) -> None:
    r = await admin.put(
        f"{ITEMS}/sku-1", content=b'{"price": 1', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["where"] == "body"
    assert "not valid JSON" in r.json()["error"]
    r = await admin.put(f"{ITEMS}/sku-1", content=b"")
    assert r.status_code == 400 and r.json()["where"] == "body"
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    r = await admin.put(f"{ITEMS}/sku-1", content=deep)
    assert r.status_code == 400 and r.json()["where"] == "body"
    r = await admin.post(ITEMS, content=b"[" * 5000 + b"]" * 5000)
    assert r.status_code == 400 and "too deep" in r.json()["error"]


BAD_BULKS: list[tuple[Any, str, str]] = [
    ({"id": "sku-1", "fields": {}}, "body", "array"),
    ([{"id": "sku-1", "fields": {}}, "sku-2"], "[1]", "an item is"),
    ([{"id": "sku-1", "fields": {}}, {"id": "sku-2"}], "[1].fields", "no fields"),
    ([{"id": "sku-1", "fields": {}}, {"fields": {}}], "[1].id", "no id"),
    ([{"id": "sku-1", "fields": {}, "price": 3}], "[0].price", "unknown key"),
    ([{"id": "sku-1", "fields": {}}, {"id": 2, "fields": {}}], "[1].id", "item id"),
    ([{"id": "sku-1", "fields": {}}, {"id": "sku-2", "fields": 3}], "[1].fields", "object"),
    (
        [{"id": "sku-1", "fields": {"price": 1}}, {"id": "sku-2", "fields": {"price": "1"}}],
        "[1].fields.price",
        "number",
    ),
    ([{"id": f"s{n}", "fields": {}} for n in range(MAX_BULK_ITEMS + 1)], "body", "at most"),
]


@pytest.mark.parametrize(("body", "where", "reason"), BAD_BULKS)
async def test_a_bad_bulk_is_refused_whole(
    admin: httpx.AsyncClient, body: Any, where: str, reason: str
) -> None:
    r = await admin.post(ITEMS, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["where"] == where and reason in r.json()["error"]
    assert (await admin.get(ITEMS)).json()["items"] == []


async def test_bad_reads_are_refused(admin: httpx.AsyncClient) -> None:
    r = await admin.get(ITEMS, params={"after": "a b"})
    assert r.status_code == 400 and r.json()["where"] == "after"
    r = await admin.get(ITEMS, params={"limit": 0})
    assert r.status_code == 400 and r.json()["where"] == "query.limit"
    r = await admin.get(ITEMS, params={"limit": 1001})
    assert r.status_code == 400
    r = await admin.get("/admin/catalogs/BAD/items/sku-1")
    assert r.status_code == 400 and r.json()["where"] == "catalog"
    r = await admin.delete(f"{ITEMS}/not%20an%20id")
    assert r.status_code == 400 and r.json()["where"] == "id"


async def test_an_unavailable_catalog_answers_503(
    admin: httpx.AsyncClient, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pipeline.catalogs.store  # type: ignore[union-attr]

    async def unavailable(*args: Any) -> Any:
        raise CatalogUnavailable("disk I/O error")

    for method in ("upsert", "get", "list_items", "delete"):
        monkeypatch.setattr(store, method, unavailable)
    for r in (
        await admin.put(f"{ITEMS}/sku-1", json={"price": 1}),
        await admin.post(ITEMS, json=[]),
        await admin.get(f"{ITEMS}/sku-1"),
        await admin.get(ITEMS),
        await admin.delete(f"{ITEMS}/sku-1"),
    ):
        assert r.status_code == 503 and "unavailable" in r.json()["error"]


async def test_the_routes_are_in_the_openapi_document(admin: httpx.AsyncClient) -> None:
    paths = (await admin.get("/openapi.json")).json()["paths"]
    assert set(paths["/admin/catalogs/{catalog}/items/{item_id}"]) == {"put", "get", "delete"}
    assert set(paths["/admin/catalogs/{catalog}/items"]) == {"post", "get"}
    schema = paths["/admin/catalogs/{catalog}/items"]["post"]["requestBody"]
    assert json.dumps(schema).count('"fields"') >= 1
