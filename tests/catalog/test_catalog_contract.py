"""The catalog store, the same in SQLite and PostgreSQL: upserts all or nothing, with the events
they derive kept until they are shipped; reads, pages and deletes; writers that take turns."""

from __future__ import annotations

import asyncio
import random

import pytest

from mailpulse.catalog import BACK_IN_STOCK, PRICE_DROPPED, CatalogError, CatalogUnavailable
from mailpulse.catalog.model import MAX_BULK_ITEMS, MAX_FIELDS, MAX_ITEM_BYTES
from tests.catalog.conftest import CatalogFactory, ReaderFactory


async def test_an_upsert_creates_then_replaces_and_reads_back(open_catalog: CatalogFactory):
    store = await open_catalog()
    results = await store.upsert(
        "products",
        [("sku-1", {"price": 10, "name": "Mug"}), ("sku-2", {"price": 2.5, "tags": ["a"]})],
        100.0,
    )
    assert [(r.item.id, r.changed, r.events, r.item.updated_at) for r in results] == [
        ("sku-1", True, [], 100.0),
        ("sku-2", True, [], 100.0),
    ]
    item = await store.get("products", "sku-1")
    assert item is not None and item.fields == {"price": 10, "name": "Mug"}
    assert (item.catalog, item.id, item.updated_at) == ("products", "sku-1", 100.0)

    # Replaced, not merged: the name is gone.
    [result] = await store.upsert("products", [("sku-1", {"price": 12})], 101.0)
    assert result.changed and result.item.fields == {"price": 12}
    item = await store.get("products", "sku-1")
    assert item is not None and item.fields == {"price": 12} and item.updated_at == 101.0

    found = await store.get_many(
        [("products", "sku-1"), ("products", "nope"), ("articles", "sku-2"), ("products", "sku-2")]
    )
    assert sorted(found) == [("products", "sku-1"), ("products", "sku-2")]
    assert found[("products", "sku-2")].fields == {"price": 2.5, "tags": ["a"]}
    assert await store.get("articles", "sku-1") is None
    assert await store.get_many([]) == {}


async def test_the_same_fields_again_change_nothing(open_catalog: CatalogFactory):
    store = await open_catalog()
    await store.upsert("products", [("sku-1", {"price": 10, "stock": 0})], 100.0)
    [again] = await store.upsert("products", [("sku-1", {"price": 10, "stock": 0})], 200.0)
    assert not again.changed and again.events == [] and again.item.updated_at == 100.0
    item = await store.get("products", "sku-1")
    assert item is not None and item.updated_at == 100.0
    assert await store.pending_events(10) == []


async def test_a_lower_price_and_a_restock_derive_events_kept_until_forgotten(
    open_catalog: CatalogFactory,
):
    store = await open_catalog()
    await store.upsert("products", [("sku-1", {"price": 10, "stock": 0})], 100.0)
    [result] = await store.upsert("products", [("sku-1", {"price": 8, "stock": 5})], 101.0)
    assert [ev.event for ev in result.events] == [PRICE_DROPPED, BACK_IN_STOCK]
    dropped, back = result.events
    assert dropped.properties == {
        "catalog": "products",
        "id": "sku-1",
        "old_price": 10,
        "new_price": 8,
    }
    assert back.properties == {"catalog": "products", "id": "sku-1", "old_stock": 0, "new_stock": 5}
    assert {ev.contact_key for ev in result.events} == {"object:products:sku-1"}

    pending = await store.pending_events(10)
    assert [ev.message_id for ev in pending] == [dropped.message_id, back.message_id]
    assert pending[0].properties == dropped.properties and pending[0].received_at == 101.0

    # A rise derives nothing; a retried request (same fields) neither.
    [rise] = await store.upsert("products", [("sku-1", {"price": 9, "stock": 5})], 102.0)
    [retry] = await store.upsert("products", [("sku-1", {"price": 9, "stock": 5})], 103.0)
    assert rise.events == [] and retry.events == []

    await store.forget_events([dropped.message_id])
    assert [ev.message_id for ev in await store.pending_events(10)] == [back.message_id]
    await store.forget_events([back.message_id, "never-there"])
    assert await store.pending_events(10) == []
    await store.forget_events([])


async def test_pending_events_survive_a_restart(open_catalog: CatalogFactory):
    store = await open_catalog()
    await store.upsert("products", [("sku-1", {"in_stock": False})], 100.0)
    [result] = await store.upsert("products", [("sku-1", {"in_stock": True})], 101.0)
    await store.close()
    again = await open_catalog()
    assert [ev.message_id for ev in await again.pending_events(10)] == [result.events[0].message_id]
    item = await again.get("products", "sku-1")
    assert item is not None and item.fields == {"in_stock": True}


async def test_updated_at_moves_on_even_when_the_clock_goes_back(open_catalog: CatalogFactory):
    store = await open_catalog()
    await store.upsert("products", [("sku-1", {"price": 10})], 100.0)
    [first] = await store.upsert("products", [("sku-1", {"price": 9})], 50.0)
    [second] = await store.upsert("products", [("sku-1", {"price": 8})], 50.0)
    assert 100.0 < first.item.updated_at < second.item.updated_at
    assert first.events[0].message_id != second.events[0].message_id


@pytest.mark.parametrize(
    ("catalog", "items", "where"),
    [
        ("Products", [("sku-1", {})], "catalog"),
        ("products", [("sku-1", {"price": 1}), ("sku 2", {})], "[1].id"),
        ("products", [("sku-1", {"price": 1}), ("sku-2", {"price": "9.99"})], "[1].fields.price"),
        ("products", [("sku-1", {"price": 1}), ("sku-2", {"stock": -1})], "[1].fields.stock"),
        ("products", [("sku-1", {"price": 1}), ("sku-2", {"in_stock": 1})], "[1].fields.in_stock"),
        ("products", [("sku-1", {"price": 1}), ("sku-2", [1, 2])], "[1].fields"),
        ("products", [("sku-1", {"price": 1}), ("sku-2", {"_x": 1})], "[1].fields"),
        ("products", [("sku-2", {f"f{n}": n for n in range(MAX_FIELDS + 1)})], "[0].fields"),
        ("products", [("sku-2", {"blob": "x" * MAX_ITEM_BYTES})], "[0].fields"),
    ],
)
async def test_bad_input_is_refused_whole(
    open_catalog: CatalogFactory, catalog: str, items: list, where: str
):
    store = await open_catalog()
    with pytest.raises(CatalogError) as refused:
        await store.upsert(catalog, items, 100.0)
    assert refused.value.where == where
    assert await store.list_items("products", "", 10) == []


async def test_an_id_that_comes_again_applies_in_order(open_catalog: CatalogFactory):
    store = await open_catalog()
    await store.upsert("products", [("sku-1", {"price": 10})], 100.0)
    results = await store.upsert(
        "products",
        [("sku-1", {"price": 8}), ("sku-2", {}), ("sku-1", {"price": 6}), ("sku-1", {"price": 6})],
        101.0,
    )
    assert [r.changed for r in results] == [True, True, True, False]
    assert [ev.properties["old_price"] for r in results for ev in r.events] == [10, 8]
    assert results[0].item.updated_at < results[2].item.updated_at == results[3].item.updated_at
    item = await store.get("products", "sku-1")
    assert item is not None and item.fields == {"price": 6}
    assert item.updated_at == results[2].item.updated_at
    assert len(await store.pending_events(10)) == 2


async def test_too_many_items_at_once_are_refused(open_catalog: CatalogFactory):
    store = await open_catalog()
    items = [(f"sku-{n}", {}) for n in range(MAX_BULK_ITEMS + 1)]
    with pytest.raises(CatalogError, match="at most"):
        await store.upsert("products", items, 100.0)
    # The most allowed go in at once.
    results = await store.upsert("products", items[:MAX_BULK_ITEMS], 100.0)
    assert len(results) == MAX_BULK_ITEMS
    assert len(await store.get_many([("products", i) for i, _ in items])) == MAX_BULK_ITEMS


async def test_pages_go_in_byte_order_of_ids_within_one_catalog(open_catalog: CatalogFactory):
    store = await open_catalog()
    ids = ["b", "a-1", "Z", "a", "9", "a.2"]
    await store.upsert("products", [(i, {"n": i}) for i in ids], 100.0)
    await store.upsert("articles", [("a", {})], 100.0)
    seen: list[str] = []
    after = ""
    while True:
        page = await store.list_items("products", after, 2)
        seen += [item.id for item in page]
        if len(page) < 2:
            break
        after = page[-1].id
    assert seen == sorted(ids, key=str.encode) == ["9", "Z", "a", "a-1", "a.2", "b"]
    assert [item.fields for item in await store.list_items("products", "a.2", 5)] == [{"n": "b"}]


async def test_delete_says_whether_there_was_an_item(open_catalog: CatalogFactory):
    store = await open_catalog()
    await store.upsert("products", [("sku-1", {"price": 3})], 100.0)
    assert await store.delete("products", "sku-1")
    assert not await store.delete("products", "sku-1")
    assert await store.get("products", "sku-1") is None
    # Back again, it is new: nothing to derive from.
    [result] = await store.upsert("products", [("sku-1", {"price": 1})], 101.0)
    assert result.changed and result.events == []


async def test_a_reader_elsewhere_sees_every_write_at_once(
    open_catalog: CatalogFactory, open_reader: ReaderFactory
):
    store = await open_catalog()
    await store.upsert("products", [("sku-1", {"price": 10})], 100.0)
    reader = await open_reader()
    key = ("products", "sku-1")
    assert (await reader.get_many([key]))[key].fields == {"price": 10}
    await store.upsert("products", [("sku-1", {"price": 7})], 101.0)
    assert (await reader.get_many([key]))[key].fields == {"price": 7}
    await store.delete("products", "sku-1")
    assert await reader.get_many([key]) == {}


async def test_a_sqlite_reader_before_the_file_exists_is_unavailable_until_it_does(
    tmp_path,
) -> None:
    from mailpulse.catalog import catalog_reader, catalog_store

    location = str(tmp_path / "catalog.db")
    reader = catalog_reader(location)
    await reader.open()
    with pytest.raises(CatalogUnavailable):
        await reader.get_many([("products", "sku-1")])
    store = catalog_store(location)
    await store.open()
    await store.upsert("products", [("sku-1", {"price": 1})], 1.0)
    assert list(await reader.get_many([("products", "sku-1")])) == [("products", "sku-1")]
    await reader.close()
    await store.close()


async def test_writers_of_one_item_take_turns(open_catalog: CatalogFactory, catalog_location: str):
    """Each update derives its events from the one before it, never two from the same: with
    PostgreSQL, from two stores (two API nodes) at once."""
    first = await open_catalog()
    second = await open_catalog() if catalog_location.startswith("postgres") else first
    await first.upsert("products", [("sku-1", {"price": 1000})], 100.0)
    prices = list(range(900, 880, -1))
    random.Random(7).shuffle(prices)
    results = await asyncio.gather(
        *(
            (first, second)[n % 2].upsert("products", [("sku-1", {"price": p})], 100.0 + n)
            for n, p in enumerate(prices)
        )
    )
    old_prices = [ev.properties["old_price"] for [r] in results for ev in r.events]
    assert len(old_prices) == len(set(old_prices))
    assert 1000 in old_prices
    message_ids = [ev.message_id for [r] in results for ev in r.events]
    assert len(set(message_ids)) == len(message_ids)
    assert len(await first.pending_events(100)) == len(message_ids)
