"""Catalog items set over the admin API reach the courier process when it renders, embedded
(the catalog's SQLite file) and scale-out (PostgreSQL, read by the worker's courier): the mail
shows the price of the moment it is made, and a price drop is in the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project

CART = """\
---
subject: "Your cart"
---
<html><body>
{% for item in event.properties.products %}{% set now = catalog("products", item.product_id) %}
{% set price = now.price if now.price is number else item.price %}
<p>{{ item.name }}: {{ "%.2f" | format(price | float) }}
{%- if now.stock is number %} ({{ now.stock }} left){% endif %}</p>
{% endfor %}
</body></html>
"""

JOURNEY = """\
trigger:
  event: Product Added
entry: always
steps:
  - send: cart
"""


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    root = write_project(tmp_path / "project", sink.port, journeys={"cart": JOURNEY})
    (root / "templates" / "cart.html").write_text(CART, encoding="utf-8")
    return root


async def add_to_cart(server: Server, user: str, message_id: str) -> None:
    products = [
        {"product_id": "sku-1", "name": "Mug", "price": 100},
        {"product_id": "sku-9", "name": "Pan", "price": 30},  # not in the catalog
    ]
    r = await server.send(
        "track",
        {
            "userId": user,
            "messageId": message_id,
            "event": "Product Added",
            "properties": {"products": products},
        },
    )
    assert r.status_code == 200, r.text


async def test_the_mail_shows_the_catalog_as_it_is_when_made(server: Server, sink: Sink) -> None:
    items = "/admin/catalogs/products/items"
    r = await server.admin.put(f"{items}/sku-1", json={"price": 100, "stock": 0})
    assert r.status_code == 200, r.text
    r = await server.admin.put(f"{items}/sku-1", json={"price": 80, "stock": 4})
    assert r.json()["events"] == ["Price Dropped", "Back In Stock"]
    logged = await server.pipeline.log.for_contact(["object:products:sku-1"], 10)
    assert [ev.event for ev in logged] == ["Price Dropped", "Back In Stock"]
    assert logged[0].properties["old_price"] == 100 and logged[0].properties["new_price"] == 80

    await server.send("identify", {"userId": "u-1", "traits": {"email": "cart@example.com"}})
    await add_to_cart(server, "u-1", "add-1")
    [first] = await sink.wait_for("cart@example.com")
    text = first.message.get_body(("plain",)).get_content()
    assert "Mug: 80.00 (4 left)" in text and "Pan: 30.00" in text

    # The courier reads the catalog afresh for every message.
    r = await server.admin.put(f"{items}/sku-1", json={"price": 70, "stock": 1})
    assert r.status_code == 200
    await add_to_cart(server, "u-1", "add-2")
    second = (await sink.wait_for("cart@example.com", 2))[1]
    assert "Mug: 70.00 (1 left)" in second.message.get_body(("plain",)).get_content()
