"""Catalog updates sent as events, end to end: only a server write key may send them; they
update the catalog (deriving Price Dropped) and are not kept as anyone's history; a bad one
changes nothing and says what is wrong and where."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, Server, Sink, write_project

SERVER_KEY = "server-side-key"


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    root = write_project(tmp_path / "project", sink.port)
    toml = root / "mailpulse.toml"
    toml.write_text(
        toml.read_text().replace(
            f'admin_key = "{ADMIN_KEY}"',
            f'admin_key = "{ADMIN_KEY}"\nserver_write_keys = ["{SERVER_KEY}"]',
        )
    )
    return root


def update(item: str, fields: object, n: int = 0) -> dict:
    return {
        "type": "track",
        "anonymousId": "catalog-feed",
        "messageId": f"feed-{item}-{n}",
        "event": "Catalog Item Updated",
        "properties": {"catalog": "products", "id": item, "fields": fields},
    }


async def item(server: Server, item_id: str) -> dict | None:
    r = await server.admin.get(f"/admin/catalogs/products/items/{item_id}")
    return r.json() if r.status_code == 200 else None


async def test_a_server_key_updates_the_catalog_by_event(server: Server) -> None:
    feed = httpx.AsyncClient(base_url=server.base, auth=(SERVER_KEY, ""))
    async with feed:
        r = await feed.post("/v1/batch", json={"batch": [update("tent", {"price": 249})]})
        assert r.status_code == 200, r.text
        # One request may mix catalog updates and ordinary events.
        mixed = [
            update("tent", {"price": 199}, 1),
            {"type": "track", "userId": "u1", "event": "Product Viewed"},
        ]
        assert (await feed.post("/v1/batch", json={"batch": mixed})).status_code == 200
    tent = await item(server, "tent")
    assert tent is not None and tent["fields"] == {"price": 199}
    await server.wait_event("u1", "Product Viewed")
    feed_history = await server.admin.get("/admin/contacts/catalog-feed/events")
    assert feed_history.status_code == 404  # not kept as anyone's history
    logged = await server.pipeline.log.for_contact(["object:products:tent"], 10)
    assert [(ev.event, ev.properties["new_price"]) for ev in logged] == [("Price Dropped", 199)]


async def test_a_browser_key_or_a_bad_update_changes_nothing(server: Server) -> None:
    r = await server.send("track", update("tent", {"price": 0}))  # the ordinary write key
    assert r.status_code == 403 and "server write key" in r.json()["error"]
    async with httpx.AsyncClient(base_url=server.base, auth=(SERVER_KEY, "")) as feed:
        batch = [
            {"type": "track", "userId": "u2", "event": "Product Viewed"},
            update("tent", {"price": "cheap"}),
        ]
        r = await feed.post("/v1/batch", json={"batch": batch})
        assert r.status_code == 400
        assert r.json()["where"].startswith("batch[1].properties.fields")
        r = await feed.post("/v1/track", json=update("bad id!", {"price": 1}))
        assert (r.status_code, r.json()["where"]) == (400, "properties.id")
    assert await item(server, "tent") is None
    assert (await server.admin.get("/admin/contacts/u2")).status_code == 404
