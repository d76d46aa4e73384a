"""JetStream buses for the bus tests, on the NATS servers of tests/conftest.py.

`make_jetstream_bus` gives each test its own stream prefix and deletes its stream afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from bench.servers import delete_stream

from mailpulse.bus.jetstream import JetStreamBus

MakeBus = Callable[..., Awaitable[JetStreamBus]]


@pytest.fixture
async def make_jetstream_bus(nats_server: str) -> AsyncIterator[MakeBus]:
    """Connects buses on this test's own prefix, to the shared server unless `url` names
    another; closes them, and deletes the stream from the shared server, afterwards."""
    prefix = f"t{uuid.uuid4().hex[:16]}"
    buses: list[JetStreamBus] = []
    shared_used = False

    async def make(url: str = nats_server, **options: Any) -> JetStreamBus:
        nonlocal shared_used
        shared_used = shared_used or url == nats_server
        bus = JetStreamBus(url, prefix=prefix, **options)
        await bus.open()
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()
    if shared_used:
        # A server of a test's own goes with its store; the shared one lives on.
        await delete_stream(nats_server, prefix)
