"""Object notifications end to end: a product back in stock, over the catalog admin API,
reaches by email everyone who viewed it lately, and nobody else."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project

JOURNEYS = {
    "back_in_stock": """\
        trigger:
          event: Back In Stock
          fan_out:
            catalog: products
            performed: [Product Viewed, Product Added to Wishlist]
            key: product_id
            within: 30d
        entry: always
        steps:
          - send: reminder
        """,
}


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port, journeys=JOURNEYS)


async def shopper(server: Server, user: str, event: str, product: str) -> None:
    traits = {"email": f"{user}@example.com", "first_name": user}
    assert (await server.send("identify", {"userId": user, "traits": traits})).status_code == 200
    body = {"userId": user, "event": event, "properties": {"product_id": product}}
    assert (await server.send("track", body)).status_code == 200


async def put_stock(server: Server, product: str, stock: int) -> dict:
    fields = {"name": "Ridge tent", "price": 249, "stock": stock}
    response = await server.admin.put(f"/admin/catalogs/products/items/{product}", json=fields)
    assert response.status_code == 200, response.text
    return response.json()


async def test_back_in_stock_reaches_those_who_viewed_or_wished_for_it(
    server: Server, sink: Sink
) -> None:
    await put_stock(server, "tent", 0)
    await shopper(server, "viewer", "Product Viewed", "tent")
    await shopper(server, "wisher", "Product Added to Wishlist", "tent")
    await shopper(server, "other", "Product Viewed", "stove")
    await server.wait_event("wisher", "Product Added to Wishlist")
    assert (await put_stock(server, "tent", 4))["events"] == ["Back In Stock"]
    await sink.wait_until(lambda: len(sink.received) >= 2, within=10)
    await asyncio.sleep(0.5)  # anything else would have come by now
    assert sorted(r.rcpt for r in sink.received) == ["viewer@example.com", "wisher@example.com"]
    # Stock going down and up by some does not notify again: only from 0.
    await put_stock(server, "tent", 3)
    await put_stock(server, "tent", 5)
    await asyncio.sleep(0.5)
    assert len(sink.received) == 2
