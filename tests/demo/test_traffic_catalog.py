"""With the admin key, the demo traffic keeps the server's products catalog: seeded at start,
marked down, sold and restocked as the shop runs; against the real API of an example-shop
server, so every call must pass its checks."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
import uvicorn

from mailpulse.api import create_app
from mailpulse.catalog import BACK_IN_STOCK, PRICE_DROPPED
from mailpulse.demo import TrafficGenerator
from mailpulse.demo.traffic import CATALOG
from mailpulse.project import load_project
from mailpulse.runtime.courier import Delivered
from mailpulse.runtime.pipeline import Pipeline
from mailpulse.types import DeliveryResult, DeliveryStatus, SendIntent

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"


class Accepting:
    """A courier whose every message is accepted at once: the send leg is not under test."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    def prepare(self, intent: SendIntent) -> None: ...

    def submit(self, intent: SendIntent) -> Awaitable[Delivered]:
        done: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        result = DeliveryResult(
            key=intent.key, status=DeliveryStatus.SENT, code=250, at=time.time()
        )
        done.set_result(Delivered(message_id="<demo@test>", result=result))
        return done


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, Pipeline]]:
    pipeline = Pipeline.embedded(load_project(SHOP), tmp_path / "data", courier=Accepting())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = create_app(pipeline)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(20):
        while not server.started:
            if serving.done():
                await serving
            await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", pipeline
    server.should_exit = True
    await serving
    sock.close()


async def test_the_traffic_keeps_the_catalog_it_shows(server: tuple[str, Pipeline]) -> None:
    base, pipeline = server
    config = load_project(SHOP).config.project
    generator = TrafficGenerator(
        base, config.write_keys[0], rate=1000.0, seed=11, admin_key=config.admin_key
    )
    await generator.run_for(400)
    assert generator.errors == 0
    assert generator.catalog_updates > 5  # the seed, then changes now and then

    assert pipeline.catalogs is not None
    stored = {
        item.id: item.fields
        for item in await pipeline.catalogs.store.list_items("products", "", 100)
    }
    merchandiser = generator._merchandiser
    assert stored == {p.product_id: merchandiser.fields(p) for p in CATALOG}
    assert any(fields["stock"] == 0 for fields in stored.values()) or any(
        fields["price"] != p.price for p, fields in zip(CATALOG, stored.values(), strict=True)
    )
    derived = [
        ev
        for ev in await pipeline.log.read(0, 100_000)
        if ev.contact_key.startswith("object:products:")
    ]
    assert derived and {ev.event for ev in derived} <= {PRICE_DROPPED, BACK_IN_STOCK}


async def test_without_the_admin_key_the_catalog_is_left_alone(
    server: tuple[str, Pipeline],
) -> None:
    base, pipeline = server
    generator = TrafficGenerator(base, "demo-write-key", rate=1000.0, seed=11)
    await generator.run_for(50)
    assert generator.errors == 0 and generator.catalog_updates == 0
    assert pipeline.catalogs is not None
    assert await pipeline.catalogs.store.list_items("products", "", 10) == []
