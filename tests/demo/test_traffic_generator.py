from __future__ import annotations

import asyncio
import base64
import logging
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from mailpulse.demo import TrafficGenerator

WRITE_KEY = "wk_demo_shop"
FAST = 1000.0  # actions per second: the generator's ceiling, keeps tests short


@dataclass
class Recorded:
    path: str
    authorization: str | None
    body: dict[str, Any]


@dataclass
class Shop:
    """A stand-in mailpulse ingestion endpoint that records every request."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    answer_status: int = 200
    answer_json: bool = True

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """Every Segment call as (type, body), batches unpacked, in arrival order."""
        out = []
        for request in self.requests:
            if request.path == "batch":
                out += [(item["type"], item) for item in request.body["batch"]]
            else:
                out.append((request.path, request.body))
        return out


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # uvicorn leaves a socket it is handed as it is, and without NODELAY every answer waits
    # ~40 ms for a delayed ACK; accepted connections inherit the option from this socket.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    sock = _free_socket()
    recorder = Shop(url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    app = FastAPI()

    @app.post("/v1/{call}")
    async def receive(call: str, request: Request) -> Any:
        body = await request.json()
        recorder.requests.append(Recorded(call, request.headers.get("authorization"), body))
        if recorder.answer_status == 200:
            return {"success": True}
        if recorder.answer_json:
            return JSONResponse({"detail": "write key not recognised"}, recorder.answer_status)
        return PlainTextResponse("upstream busy", recorder.answer_status)

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.01)
    yield recorder
    server.should_exit = True
    await serving
    sock.close()


async def test_calls_are_segment_shaped_with_basic_auth(shop):
    generator = TrafficGenerator(shop.url, WRITE_KEY, rate=FAST, seed=7)
    await generator.run_for(200)

    assert generator.actions_sent == len(shop.requests) == 200
    assert generator.errors == 0
    expected_auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    assert {r.authorization for r in shop.requests} == {expected_auth}
    assert {r.path for r in shop.requests} == {"batch", "identify", "track"}

    calls = shop.calls()
    message_ids = [body["messageId"] for _, body in calls]
    assert len(set(message_ids)) == len(message_ids)
    identified: set[str] = set()
    events: dict[str, list[dict[str, Any]]] = {}
    for kind, body in calls:
        assert body.get("userId") or body.get("anonymousId")
        uuid.UUID(body["messageId"])
        assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
        if kind == "identify":
            traits = body["traits"]
            assert re.fullmatch(r"[a-z.]+\.[0-9a-f]{6}@example\.(com|org|net)", traits["email"])
            assert {"first_name", "last_name", "plan", "timezone"} <= traits.keys()
            identified.add(body["userId"])
        else:
            assert kind == "track"
            assert body["userId"] in identified, "a visitor is identified before they act"
            assert isinstance(body["properties"], dict)
            events.setdefault(body["event"], []).append(body["properties"])

    assert set(events) == {
        "Signed Up",
        "Subscribed",
        "Product Viewed",
        "Product Added",
        "Checkout Started",
        "Order Completed",
    }
    # Some of those signing up tick the newsletter box: consent as shown, for double opt-in.
    assert 0 < len(events["Subscribed"]) < len(events["Signed Up"])
    for subscribed in events["Subscribed"]:
        assert subscribed["topic"] == "newsletter" and subscribed["source"] == "signup_form"
        assert subscribed["wording"].startswith("Send me The Acme Letter")
    product_keys = {"product_id", "name", "price", "url", "image_url"}
    for viewed in events["Product Viewed"]:
        assert product_keys | {"currency"} <= viewed.keys()
        assert viewed["image_url"].startswith("https://")
    for added in events["Product Added"]:
        assert added["products"] and all(
            product_keys | {"quantity"} <= line.keys() for line in added["products"]
        )
        assert added["cart_total"] == pytest.approx(
            sum(line["price"] * line["quantity"] for line in added["products"])
        )
    for order in events["Order Completed"]:
        assert {"order_id", "total", "revenue", "currency", "products"} <= order.keys()
    catalog = {p["product_id"] for p in events["Product Viewed"]}
    assert 8 <= len(catalog) <= 12


async def test_a_share_of_carts_is_abandoned(shop):
    await TrafficGenerator(shop.url, WRITE_KEY, rate=FAST, seed=11).run_for(600)

    tracks = [body for kind, body in shop.calls() if kind == "track"]
    carts = {t["properties"]["cart_id"] for t in tracks if t["event"] == "Product Added"}
    ordered = {t["properties"]["cart_id"] for t in tracks if t["event"] == "Order Completed"}
    assert ordered <= carts
    abandoned_share = 1 - len(ordered) / len(carts)
    # Carts still open when the run ends count as abandoned here, hence the loose upper bound.
    assert 0.25 <= abandoned_share <= 0.6


async def test_the_same_seed_tells_the_same_story(shop):
    await TrafficGenerator(shop.url, WRITE_KEY, rate=FAST, seed=3).run_for(40)
    first = [(k, b["userId"], b.get("event"), b["messageId"]) for k, b in shop.calls()]
    shop.requests.clear()
    await TrafficGenerator(shop.url, WRITE_KEY, rate=FAST, seed=3).run_for(40)
    again = [(k, b["userId"], b.get("event"), b["messageId"]) for k, b in shop.calls()]
    shop.requests.clear()
    await TrafficGenerator(shop.url, WRITE_KEY, rate=FAST, seed=4).run_for(40)
    other = [(k, b["userId"], b.get("event"), b["messageId"]) for k, b in shop.calls()]

    assert first == again
    assert first != other


async def test_run_sends_no_more_than_the_rate_allows_and_stops_when_told(shop):
    rate = 20.0
    generator = TrafficGenerator(shop.url, WRITE_KEY, rate=rate, seed=1)
    stop = asyncio.Event()
    started = time.monotonic()
    running = asyncio.create_task(generator.run(stop))
    await asyncio.sleep(0.5)
    stop.set()
    await running
    elapsed = time.monotonic() - started

    # Each action has its own 1/rate slot, so no window of T seconds holds more than T*rate+1.
    assert 1 <= len(shop.requests) <= rate * elapsed + 1
    assert generator.actions_sent == len(shop.requests)


async def test_run_for_sends_exactly_that_many_actions(shop):
    generator = TrafficGenerator(shop.url, WRITE_KEY, rate=50, seed=2)
    await generator.run_for(3)
    assert len(shop.requests) == generator.actions_sent == 3


@pytest.mark.parametrize(
    ("status", "as_json", "reason"),
    [(401, True, "write key not recognised"), (503, False, "upstream busy")],
)
async def test_rejected_calls_are_counted_and_logged_once(shop, caplog, status, as_json, reason):
    shop.answer_status, shop.answer_json = status, as_json
    generator = TrafficGenerator(shop.url, "wrong-key", rate=FAST, seed=5)

    with caplog.at_level(logging.WARNING, logger="mailpulse.demo.traffic"):
        await generator.run_for(12)

    assert generator.actions_sent == 12
    assert generator.errors == 12
    logged = [r.getMessage() for r in caplog.records]
    assert logged and all(reason in line and f"HTTP {status}" in line for line in logged)
    assert len(logged) == len(set(logged)) <= 3  # once per endpoint and reason


async def test_unreachable_server_is_counted_not_raised(caplog):
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    generator = TrafficGenerator(f"http://127.0.0.1:{port}", WRITE_KEY, rate=FAST, seed=6)

    with caplog.at_level(logging.WARNING, logger="mailpulse.demo.traffic"):
        await generator.run_for(4)

    assert generator.errors == generator.actions_sent == 4
    assert any("ConnectError" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("rate", [0, -1.0, 1e6])
def test_rate_must_be_positive_and_bounded(rate):
    with pytest.raises(ValueError, match="rate"):
        TrafficGenerator("http://127.0.0.1:1", WRITE_KEY, rate=rate)


async def test_run_with_stop_already_set_sends_nothing(shop):
    stop = asyncio.Event()
    stop.set()
    generator = TrafficGenerator(shop.url, WRITE_KEY, rate=FAST, seed=8)
    await generator.run(stop)
    assert shop.requests == [] and generator.actions_sent == 0
