"""`catalog(name, id)` in templates: the fields as they are when the message is made, fetched
for every message (nothing cached), with the event's values to fall back on."""

from __future__ import annotations

import email
from collections.abc import Sequence
from email import policy
from pathlib import Path
from typing import Any

import pytest

from mailpulse.catalog import CatalogItem, CatalogUnavailable, ItemKey
from mailpulse.catalog.lookup import MAX_ITEMS, MAX_ROUNDS, RenderCatalog, item_key
from mailpulse.catalog.sqlite import SqliteCatalogStore
from mailpulse.errors import RenderError
from mailpulse.project import load_project
from mailpulse.render.library import TemplateLibrary
from mailpulse.runtime.courier import LocalCourier, MessageFactory
from mailpulse.runtime.courier_parts import message_factory, sender_identity
from mailpulse.types import DeliveryStatus, SendIntent
from tests.delivery.peers import smtp_server

__all__ = ["smtp_server"]

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


def cart_intent(key: str = "k1") -> SendIntent:
    """A cart as it was filled: the sweater at 89.00, the skillet (not in the catalog) at 55."""
    products = [
        {
            "product_id": "sku-1001",
            "name": "Merino Crew Sweater",
            "price": 89.0,
            "quantity": 1,
            "url": "https://shop.example.com/products/merino-crew-sweater",
            "image_url": "https://shop.example.com/images/merino-crew-sweater.jpg",
        },
        {
            "product_id": "sku-1010",
            "name": "Cast Iron Skillet",
            "price": 55.0,
            "quantity": 2,
            "url": "https://shop.example.com/products/cast-iron-skillet",
            "image_url": "https://shop.example.com/images/cast-iron-skillet.jpg",
        },
    ]
    return SendIntent(
        key=key,
        contact_id="u1",
        email="ada@example.org",
        template="cart_reminder",
        context={
            "contact": {"first_name": "Ada", "email": "ada@example.org"},
            "event": {
                "event": "Product Added",
                "properties": {"products": products, "cart_total": 199.0, "currency": "USD"},
            },
        },
    )


def text_of(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=policy.default)
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


class Counting:
    """A reader that counts its round trips."""

    def __init__(self, store: SqliteCatalogStore) -> None:
        self.store = store
        self.calls: list[list[ItemKey]] = []

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def get_many(self, keys: Sequence[ItemKey]) -> dict[ItemKey, CatalogItem]:
        self.calls.append(list(keys))
        return await self.store.get_many(keys)


@pytest.fixture
async def store(tmp_path: Path):
    catalog = SqliteCatalogStore(tmp_path / "catalog.db")
    await catalog.open()
    yield catalog
    await catalog.close()


@pytest.fixture(scope="module")
def shop():
    return load_project(SHOP)


async def test_the_cart_reminder_shows_todays_price_and_stock(store, shop) -> None:
    await store.upsert("products", [("sku-1001", {"price": 79.0, "stock": 2})], 100.0)
    reader = Counting(store)
    factory = message_factory(shop, reader)

    message, _, _ = await factory.make_current(cart_intent())
    text = text_of(message.data)
    assert "Qty 1 · 79.00 USD · was 89.00" in text
    assert "Only 2 left in stock." in text
    assert "Qty 2 · 55.00 USD" in text  # not in the catalog: as it was added
    assert "Total: 189.00 USD" in text  # 79 + 2 x 55, not the 199.00 the event said
    assert reader.calls == [[("products", "sku-1001"), ("products", "sku-1010")]]

    # The next message reads the catalog again: nothing is cached.
    await store.upsert("products", [("sku-1001", {"price": 69.5, "stock": 0})], 101.0)
    message, _, _ = await factory.make_current(cart_intent("k2"))
    text = text_of(message.data)
    assert "Qty 1 · 69.50 USD · was 89.00" in text
    assert "Sold out for now" in text
    assert len(reader.calls) == 2


async def test_without_catalog_items_the_reminder_shows_the_event(store, shop) -> None:
    factory = message_factory(shop, store)
    message, _, _ = await factory.make_current(cart_intent())
    text = text_of(message.data)
    assert "Qty 1 · 89.00 USD" in text and "was" not in text and "left in stock" not in text
    assert "Total: 199.00 USD" in text
    # Nor without any catalog wired in (a preview).
    message, _, _ = message_factory(shop).make(cart_intent())
    assert "Total: 199.00 USD" in text_of(message.data)


async def test_a_template_that_looks_nothing_up_renders_once_without_a_round_trip(
    store, shop
) -> None:
    reader = Counting(store)
    factory = message_factory(shop, reader)
    intent = SendIntent(
        key="w", contact_id="u", email="u@example.org", template="welcome", context={}
    )
    factory.make(intent)  # no NeedItems
    await factory.make_current(intent)
    assert reader.calls == []


def library(tmp_path: Path, body: str) -> TemplateLibrary:
    folder = tmp_path / "templates"
    folder.mkdir(exist_ok=True)
    (folder / "t.html").write_text(f'---\nsubject: "s"\n---\n{body}', encoding="utf-8")
    return TemplateLibrary.load(folder)


def factory_for(tmp_path: Path, body: str, reader: Any, shop) -> MessageFactory:
    return MessageFactory(library(tmp_path, body), None, sender_identity(shop), catalog=reader)


def intent_for(**context: Any) -> SendIntent:
    return SendIntent(key="t", contact_id="u", email="u@example.org", template="t", context=context)


async def test_an_item_found_through_another_is_fetched_in_a_second_round(
    tmp_path: Path, store, shop
) -> None:
    await store.upsert(
        "products", [("a", {"related": "b"}), ("b", {"name": "Bee", "price": 3})], 100.0
    )
    reader = Counting(store)
    body = (
        '<p>{% set a = catalog("products", "a") %}'
        '{% set b = catalog("products", a.related) %}{{ b.name }} {{ b.price * 2 }}</p>'
    )
    factory = factory_for(tmp_path, body, reader, shop)
    message, _, _ = await factory.make_current(intent_for())
    assert "Bee 6" in text_of(message.data)
    assert reader.calls == [[("products", "a")], [("products", "b")]]


async def test_lookups_past_the_rounds_count_as_missing(tmp_path: Path, store, shop) -> None:
    chain = [(str(n), {"next": str(n + 1)}) for n in range(MAX_ROUNDS + 2)]
    await store.upsert("products", chain, 100.0)
    body = (
        '{% set ns = namespace(id="0", seen="") %}'
        "{% for _ in range(6) %}"
        '{% set ns.id = catalog("products", ns.id).next | default("none") %}'
        "{% set ns.seen = ns.seen ~ ns.id ~ ' ' %}{% endfor %}<p>{{ ns.seen }}</p>"
    )
    reader = Counting(store)
    factory = factory_for(tmp_path, body, reader, shop)
    message, _, _ = await factory.make_current(intent_for())
    assert len(reader.calls) == MAX_ROUNDS - 1
    assert "1 2 none none" in text_of(message.data)


async def test_ids_and_names_that_cannot_name_an_item_find_nothing(
    tmp_path: Path, store, shop
) -> None:
    await store.upsert("products", [("12", {"name": "Twelve"})], 100.0)
    body = (
        '<p>[{{ catalog("products", 12).name }}]'
        '[{{ catalog("products", none) | length }}][{{ catalog("Bad Name", "12") | length }}]'
        '[{{ catalog("products", true) | length }}][{{ catalog("products", "a/b") | length }}]'
        '[{{ catalog("products", event.missing) | length }}][{{ catalog() | length }}]</p>'
    )
    reader = Counting(store)
    message, _, _ = await factory_for(tmp_path, body, reader, shop).make_current(
        intent_for(event={})
    )
    assert "[Twelve][0][0][0][0][0][0]" in text_of(message.data)
    assert reader.calls == [[("products", "12")]]
    assert item_key("products", 7) == ("products", "7")
    assert item_key("products", 1.5) is None


async def test_a_message_looks_up_a_bounded_number_of_items(tmp_path: Path, store, shop) -> None:
    loop = f"{{% for n in range({MAX_ITEMS + 1}) %}}"
    body = f'<p>{loop}{{{{ catalog("products", n).x }}}}{{% endfor %}}</p>'
    factory = factory_for(tmp_path, body, Counting(store), shop)
    with pytest.raises(RenderError, match=f"at most {MAX_ITEMS} catalog items"):
        await factory.make_current(intent_for())


def test_templates_cannot_change_what_they_read() -> None:
    from jinja2.sandbox import SecurityError

    from mailpulse.render.sandbox import HTML_ENV

    fields = {("products", "a"): {"price": 3, "tags": ["x"]}}
    lookup = RenderCatalog(fields, asking=False)
    for source in (
        '{{ catalog("products", "a").update({"price": 0}) }}',
        '{{ catalog("products", "a").tags.append("y") }}',
    ):
        with pytest.raises(SecurityError):
            HTML_ENV.from_string(source).render(catalog=lookup)
    assert fields[("products", "a")] == {"price": 3, "tags": ["x"]}


class Unreachable:
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def get_many(self, keys: Sequence[ItemKey]) -> dict[ItemKey, CatalogItem]:
        raise CatalogUnavailable("connection refused")


class NoTransport:
    def has_free_connection(self) -> bool:
        return True

    async def begin(self, key: str, mail_from: str, rcpt_to: str):
        raise AssertionError("nothing may be sent")

    async def close(self) -> None: ...


async def test_an_unreadable_catalog_defers_the_message(shop) -> None:
    courier = LocalCourier(message_factory(shop, Unreachable()), NoTransport())
    delivered = await courier.submit(cart_intent())
    assert delivered.error == ""
    assert delivered.result is not None
    assert delivered.result.status == DeliveryStatus.DEFERRED and delivered.result.code == 0
    assert "catalog unavailable" in delivered.result.text
    await courier.close()


async def test_the_courier_sends_the_current_price_prepared_or_not(
    smtp_server, store, shop
) -> None:
    from mailpulse.delivery import SmtpRelay

    handler, port = smtp_server()
    await store.upsert("products", [("sku-1001", {"price": 75.0, "stock": 9})], 100.0)
    relay = SmtpRelay("127.0.0.1", port, starttls=False, max_connections=2)
    courier = LocalCourier(message_factory(shop, store), relay)
    first = await courier.submit(cart_intent("k1"))
    courier.prepare(cart_intent("k2"))
    second = await courier.submit(cart_intent("k2"))
    await courier.close()
    for delivered in (first, second):
        assert delivered.result is not None and delivered.result.status == DeliveryStatus.SENT
    assert len(handler.messages) == 2
    for _, _, data in handler.messages:
        assert "Qty 1 · 75.00 USD · was 89.00" in text_of(data)
