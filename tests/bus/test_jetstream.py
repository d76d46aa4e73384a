"""The JetStream bus beyond the shared contract: what survives a consumer, a restart and an
outage of the server, and exact round-trips of the pipeline's items."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import nats
import pytest
from bench.common import free_port
from bench.servers import NatsServer

from mailpulse.bus import BusUnavailable
from mailpulse.bus.jetstream import JetStreamBus
from mailpulse.types import Event, MessageClass, SendIntent
from tests.nats_server import stream_messages

from .conftest import MakeBus

TYPES = {"events": Event, "sends": SendIntent}


def event(n: int, key: str = "user-1") -> Event:
    return Event(
        type="track",
        message_id=f"m-{n}",
        contact_key=key,
        user_id=key,
        event="Order Completed",
        properties={"total": 0.1 + 0.2, "items": [{"sku": "é-1", "qty": n}], "gift": None},
        context={"ip": "203.0.113.9", "locale": "de-DE"},
        timestamp=1_700_000_000.123456,
        received_at=1_700_000_000.5,
        offset=n + 1,
    )


def intent(n: int, contact: str = "user-1") -> SendIntent:
    return SendIntent(
        key=f"welcome:{contact}:{n}",
        contact_id=contact,
        email=f"{contact}@example.com",
        template="welcome",
        context={"first_name": "Zoë", "cart": {"total": 12.5}},
        message_class=MessageClass.TRANSACTIONAL,
        journey="welcome",
        step="send",
        event_offset=n,
        event_received_at=1_700_000_000.25,
        created_at=1_700_000_001.75,
    )


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the client offers no event to wait on
            await asyncio.sleep(0.01)


async def collect(bus: JetStreamBus, subject: str, count: int, within: float = 10.0) -> list[Any]:
    got: list[Any] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            got += await bus.next_batch(subject, 0, 100, 1.0)
    return got


async def test_events_and_intents_round_trip_exactly(make_jetstream_bus: MakeBus) -> None:
    bus = await make_jetstream_bus(partitions=1, item_types=TYPES)
    sparse = Event(type="identify", message_id="m-x", contact_key="anon-1", anonymous_id="anon-1")
    await bus.publish("events", "user-1", event(0))
    await bus.publish("events", "anon-1", sparse)
    await bus.publish("sends", "user-1", intent(0))
    assert await collect(bus, "events", 2) == [event(0), sparse]
    assert await collect(bus, "sends", 1) == [intent(0)]


async def test_a_batch_its_consumer_never_finished_goes_to_the_next_owner(
    make_jetstream_bus: MakeBus,
) -> None:
    first = await make_jetstream_bus(partitions=1, item_types=TYPES, ack_wait=1.0)
    for n in range(5):
        await first.publish("events", "user-1", event(n))
    held = await first.next_batch("events", 0, 10, 1.0)
    assert held == [event(n) for n in range(5)]
    await first.close()  # died holding its batch: it never asked for the next one

    second = await make_jetstream_bus(partitions=1, item_types=TYPES, ack_wait=1.0)
    assert await second.next_batch("events", 0, 10, 0.2) == []  # held until ack_wait passes
    async with asyncio.timeout(5):
        assert await second.next_batch("events", 0, 10, 4.0) == held


async def test_a_released_partition_goes_to_the_next_owner_at_once(
    make_jetstream_bus: MakeBus,
) -> None:
    # ack_wait is long: anything not handed back would keep the next owner waiting.
    first = await make_jetstream_bus(partitions=1, item_types=TYPES, ack_wait=30.0)
    for n in range(3):
        await first.publish("events", "user-1", event(n))
    assert await first.next_batch("events", 0, 10, 1.0) == [event(n) for n in range(3)]
    # Asking for more finishes that batch; its owner stops while waiting: the pull stays
    # open on the server, and takes what is published next.
    waiting = asyncio.create_task(first.next_batch("events", 0, 10, None))
    await asyncio.sleep(0.2)
    waiting.cancel()
    await first.release(0)
    await first.publish("events", "user-1", event(3))

    second = await make_jetstream_bus(partitions=1, item_types=TYPES, ack_wait=30.0)
    assert await collect(second, "events", 1, within=5.0) == [event(3)]


async def test_a_released_batch_goes_to_the_next_owner_at_once(
    make_jetstream_bus: MakeBus,
) -> None:
    first = await make_jetstream_bus(partitions=1, item_types=TYPES, ack_wait=30.0)
    for n in range(3):
        await first.publish("events", "user-1", event(n))
    assert await first.next_batch("events", 0, 10, 1.0) == [event(n) for n in range(3)]
    await first.release(0)  # stopped before it said it had finished the batch

    second = await make_jetstream_bus(partitions=1, item_types=TYPES, ack_wait=30.0)
    assert await collect(second, "events", 3, within=5.0) == [event(n) for n in range(3)]


async def test_a_finished_batch_is_not_delivered_again(
    make_jetstream_bus: MakeBus, nats_server: str
) -> None:
    first = await make_jetstream_bus(partitions=1, item_types=TYPES, ack_wait=1.0)
    for n in range(10):
        await first.publish("events", "user-1", event(n))
    assert await first.next_batch("events", 0, 4, 1.0) == [event(n) for n in range(4)]
    # Asking again says the first batch is done: the work queue drops it at once.
    assert await first.next_batch("events", 0, 4, 1.0) == [event(n) for n in range(4, 8)]
    assert await stream_messages(nats_server, first.stream) == 6
    await first.close()

    second = await make_jetstream_bus(partitions=1, item_types=TYPES, ack_wait=1.0)
    got = await collect(second, "events", 6)
    # The unfinished batch comes after what nobody held, once its ack_wait has passed.
    assert got == [event(n) for n in (8, 9, 4, 5, 6, 7)]
    assert await second.next_batch("events", 0, 10, 1.5) == []
    assert await stream_messages(nats_server, second.stream) == 0


async def test_a_batch_held_past_ack_wait_is_not_delivered_again(
    make_jetstream_bus: MakeBus, nats_server: str
) -> None:
    bus = await make_jetstream_bus(partitions=1, item_types=TYPES, ack_wait=0.3)
    for n in range(8):
        await bus.publish("events", "user-1", event(n))
    assert await bus.next_batch("events", 0, 4, 1.0) == [event(n) for n in range(4)]
    await asyncio.sleep(0.6)  # the caller is slow with its batch: ack_wait runs out
    # Asking for more still says the batch is done, before anything is handed out again.
    assert await bus.next_batch("events", 0, 10, 1.0) == [event(n) for n in range(4, 8)]
    assert await bus.next_batch("events", 0, 10, 0.5) == []
    assert await stream_messages(nats_server, bus.stream) == 0


async def test_stored_items_outlive_a_server_restart(
    make_jetstream_bus: MakeBus, own_nats_server: NatsServer
) -> None:
    bus = await make_jetstream_bus(
        own_nats_server.url, partitions=1, item_types=TYPES, reconnect_wait=0.05
    )
    for n in range(20):
        await bus.publish("events", "user-1", event(n))
    await asyncio.to_thread(own_nats_server.restart)
    assert await collect(bus, "events", 20) == [event(n) for n in range(20)]


async def test_publish_fails_clearly_while_the_server_is_down_and_nothing_is_lost(
    make_jetstream_bus: MakeBus, own_nats_server: NatsServer
) -> None:
    bus = await make_jetstream_bus(
        own_nats_server.url,
        partitions=1,
        item_types=TYPES,
        publish_timeout=1.0,
        reconnect_wait=0.05,
    )
    for n in range(2):
        await bus.publish("sends", "user-1", intent(n))
    assert await bus.next_batch("sends", 0, 1, 1.0) == [intent(0)]  # in hand over the outage

    await asyncio.to_thread(own_nats_server.stop)
    await until(lambda: not bus.connected)
    started = time.monotonic()
    with pytest.raises(BusUnavailable, match="not stored within 1s"):
        await bus.publish("sends", "user-1", intent(2))
    assert time.monotonic() - started < 3.0
    assert await bus.next_batch("sends", 0, 10, 0.3) == []
    async with asyncio.timeout(5):
        assert await bus.next_batch("sends", 0, 10, None) == []

    await asyncio.to_thread(own_nats_server.start)
    await bus.publish("sends", "user-1", intent(3))
    assert await collect(bus, "sends", 2) == [intent(1), intent(3)]
    assert await bus.next_batch("sends", 0, 10, 0.2) == []
    # The item in hand at the outage was acked after it, along with the rest.
    assert await stream_messages(own_nats_server.url, bus.stream) == 0


async def test_an_undecodable_item_is_logged_and_skipped(
    make_jetstream_bus: MakeBus, nats_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    bus = await make_jetstream_bus(partitions=1, item_types=TYPES)
    nc = await nats.connect(nats_server, allow_reconnect=False)
    try:
        await nc.jetstream().publish(f"{bus.stream}.events.0", b'{"type": 1}')
    finally:
        await nc.close()
    await bus.publish("events", "user-1", event(0))
    with caplog.at_level(logging.ERROR, logger="mailpulse.bus.jetstream"):
        assert await collect(bus, "events", 1) == [event(0)]
    assert "undecodable item" in caplog.text


async def test_connecting_to_no_server_fails_clearly() -> None:
    bus = JetStreamBus(
        f"nats://127.0.0.1:{free_port()}", partitions=1, item_types=TYPES, connect_timeout=0.5
    )
    with pytest.raises(BusUnavailable, match="no NATS server"):
        await bus.open()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"partitions": 0}, "at least one partition"),
        ({"prefix": "mail.pulse"}, "A-Z a-z 0-9"),
        ({"item_types": {"events.*": Event}}, "A-Z a-z 0-9"),
    ],
)
def test_a_bus_refuses_a_bad_layout(options: dict, message: str) -> None:
    settings = {"partitions": 1, "item_types": TYPES} | options
    with pytest.raises(ValueError, match=message):
        JetStreamBus("nats://127.0.0.1:4222", **settings)
