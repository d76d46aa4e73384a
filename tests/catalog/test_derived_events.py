"""Price Dropped and Back In Stock: when an update derives them, their shape, their ids, and
their way to the log (kept pending when the log is down, shipped once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpulse.catalog import BACK_IN_STOCK, PRICE_DROPPED, CatalogItem, Catalogs, derive
from mailpulse.catalog.sqlite import SqliteCatalogStore
from mailpulse.store import LogUnavailable
from mailpulse.store.sqlite import SqliteEventLog
from mailpulse.types import Event, object_of

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def item(at: float = 100.0, **fields) -> CatalogItem:
    return CatalogItem(catalog="products", id="sku-1", fields=fields, updated_at=at)


def names(old: CatalogItem | None, new: CatalogItem) -> list[str | None]:
    return [ev.event for ev in derive(old, new)]


def test_a_price_drop_is_an_event_about_the_object() -> None:
    [ev] = derive(item(price=89.0, name="Sweater"), item(at=123.5, price=79, name="Sweater"))
    assert ev.type == "track" and ev.event == PRICE_DROPPED
    assert ev.contact_key == "object:products:sku-1"
    assert ev.user_id is None and ev.anonymous_id is None
    assert ev.properties == {
        "catalog": "products",
        "id": "sku-1",
        "old_price": 89.0,
        "new_price": 79,
    }
    assert ev.timestamp == ev.received_at == 123.5
    assert ev.context == {"library": {"name": "mailpulse"}}
    # The fold's fan-out reads the object from the contact key.
    assert object_of(ev) == ("products", "sku-1")


def test_message_ids_derive_from_the_update() -> None:
    def message_id(at: float, **fields) -> str:
        [ev] = derive(item(price=10, stock=0), item(at=at, **fields))
        return ev.message_id

    assert message_id(5.0, price=9) == message_id(5.0, price=9)
    assert message_id(5.0, price=9) != message_id(6.0, price=9)
    assert message_id(5.0, price=9) != message_id(5.0, price=10, stock=1)  # another event
    assert message_id(5.0, price=9).startswith("mp-catalog-")


@pytest.mark.parametrize(
    ("old", "new", "derived"),
    [
        (None, {"price": 1, "stock": 5}, []),  # a new item: nobody waited for it
        ({"price": 10}, {"price": 10}, []),
        ({"price": 10}, {"price": 11}, []),
        ({"price": 10}, {}, []),
        ({}, {"price": 1}, []),
        ({"price": 10}, {"price": 9.99}, [PRICE_DROPPED]),
        ({"price": 10}, {"price": 0}, [PRICE_DROPPED]),
        ({"stock": 0}, {"stock": 1}, [BACK_IN_STOCK]),
        ({"stock": 0.0}, {"stock": 0.5}, [BACK_IN_STOCK]),
        ({"stock": 2}, {"stock": 3}, []),
        ({"stock": 1}, {"stock": 0}, []),
        ({}, {"stock": 3}, []),  # not known to be out of stock before
        ({"in_stock": False}, {"in_stock": True}, [BACK_IN_STOCK]),
        ({"in_stock": True}, {"in_stock": True}, []),
        ({}, {"in_stock": True}, []),
        ({"price": 5, "stock": 0}, {"price": 4, "stock": 2}, [PRICE_DROPPED, BACK_IN_STOCK]),
        # Both say it is back: one event.
        (
            {"stock": 0, "in_stock": False},
            {"stock": 2, "in_stock": True},
            [BACK_IN_STOCK],
        ),
    ],
)
def test_which_updates_derive_what(old: dict | None, new: dict, derived: list[str]) -> None:
    before = None if old is None else item(**old)
    assert names(before, item(at=101.0, **new)) == derived


def test_back_in_stock_says_which_field_and_its_values() -> None:
    [by_stock] = derive(item(stock=0, in_stock=False), item(stock=4, in_stock=True))
    assert by_stock.properties == {
        "catalog": "products",
        "id": "sku-1",
        "old_stock": 0,
        "new_stock": 4,
    }
    [by_flag] = derive(item(in_stock=False), item(in_stock=True))
    assert by_flag.properties["old_in_stock"] is False
    assert by_flag.properties["new_in_stock"] is True


def test_back_in_stock_starts_the_example_shops_fan_out_journey() -> None:
    from mailpulse.project import load_project

    journey = load_project(SHOP).journeys["back_in_stock"]
    [ev] = derive(item(stock=0), item(stock=3))
    assert journey.trigger.fan_out is not None
    assert journey.trigger.fan_out.catalog == object_of(ev)[0]  # type: ignore[index]
    assert journey.trigger.matches(ev)


class Log:
    """The pipeline's append, on a real SQLite log, that can be made unavailable."""

    def __init__(self, log: SqliteEventLog) -> None:
        self.log = log
        self.down = False

    async def append(self, events: list[Event]) -> list[Event]:
        if self.down:
            raise LogUnavailable("disk full")
        return await self.log.append(events)


@pytest.fixture
async def log(tmp_path: Path):
    event_log = SqliteEventLog(tmp_path / "log.db")
    await event_log.open()
    yield Log(event_log)
    await event_log.close()


@pytest.fixture
async def store(tmp_path: Path):
    catalog = SqliteCatalogStore(tmp_path / "catalog.db")
    await catalog.open()
    yield catalog
    await catalog.close()


async def test_derived_events_go_to_the_log_and_are_forgotten(log: Log, store) -> None:
    clock = iter([100.0, 101.0])
    catalogs = Catalogs(store, log.append, clock=lambda: next(clock))
    await catalogs.upsert("products", [("sku-1", {"price": 10})])
    results, shipped = await catalogs.upsert("products", [("sku-1", {"price": 8})])
    assert shipped
    [in_log] = await log.log.read(0, 10)
    assert in_log.event == PRICE_DROPPED and in_log.message_id == results[0].events[0].message_id
    assert in_log.contact_key == "object:products:sku-1"
    assert await store.pending_events(10) == []


async def test_with_the_log_down_events_stay_pending_and_ship_later_once(log: Log, store) -> None:
    clock = iter([100.0, 101.0, 102.0])
    catalogs = Catalogs(store, log.append, clock=lambda: next(clock))
    await catalogs.upsert("products", [("sku-1", {"price": 10, "stock": 0})])
    log.down = True
    results, shipped = await catalogs.upsert("products", [("sku-1", {"price": 9, "stock": 1})])
    assert not shipped
    assert [r.item.fields for r in results] == [{"price": 9, "stock": 1}]  # the write stands
    assert len(await store.pending_events(10)) == 2
    assert await catalogs.ship_pending() == 0  # still down
    log.down = False
    assert await catalogs.ship_pending() == 2
    assert await store.pending_events(10) == []
    # Shipped again (a crash before they were forgotten): the log keeps them once.
    await log.append(results[0].events)
    assert [ev.event for ev in await log.log.read(0, 10)] == [PRICE_DROPPED, BACK_IN_STOCK]
