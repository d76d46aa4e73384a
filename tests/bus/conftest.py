"""A real NATS server with JetStream for the bus tests.

`nats_server` is shared by the session: the server named by `MAILPULSE_TEST_NATS` (a nats://
URL) when set, else a `nats-server` of our own (see nats_server.py), stopped and deleted at
the end. Tests that stop and restart a server get one of their own from `own_nats_server`.
`make_jetstream_bus` gives each test its own stream prefix and deletes its stream afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import nats
import nats.js.errors
import pytest

from mailpulse.bus.jetstream import JetStreamBus

from .nats_server import NatsServer

MakeBus = Callable[..., Awaitable[JetStreamBus]]


@pytest.fixture(scope="session")
def nats_server() -> Iterator[str]:
    """The URL of a NATS server with JetStream, for the whole session."""
    external = os.environ.get("MAILPULSE_TEST_NATS")
    if external:
        yield external
        return
    server = NatsServer()
    server.start()
    try:
        yield server.url
    finally:
        server.remove()


@pytest.fixture
def own_nats_server() -> Iterator[NatsServer]:
    """A server for this test alone, to stop and restart."""
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()


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
        nc = await nats.connect(nats_server, connect_timeout=2, allow_reconnect=False)
        try:
            await nc.jetstream().delete_stream(prefix)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()
