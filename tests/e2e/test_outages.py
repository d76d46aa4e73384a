"""Scale-out through outages: NATS and then PostgreSQL restart in the middle of a run.

While the bus is down, ingestion goes on (the log is PostgreSQL) and the emails follow once it
is back; while PostgreSQL is down, ingestion answers 503 with the reason, never a false 2xx.
Afterwards every acknowledged event has produced its email, once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from bench.servers import NatsServer, Postgres, create_database, database_dsn, embedded_postgres

from tests.e2e.conftest import Deployment, Server, Sink, running_server


@pytest.fixture
async def own_postgres() -> AsyncIterator[Postgres]:
    """A server of this test's own, to stop and start again."""
    with embedded_postgres() as server:
        yield server


async def sign_up(server: Server, n: int) -> httpx.Response:
    user = f"out-{n}"
    r = await server.send("identify", {"userId": user, "traits": {"email": f"{user}@example.com"}})
    if r.status_code != 200:
        return r
    return await server.send("track", {"userId": user, "event": "Signed Up"})


async def test_bus_and_database_restarts_pause_the_pipeline_and_lose_nothing(
    project_dir: Path,
    tmp_path: Path,
    sink: Sink,
    own_postgres: Postgres,
    own_nats_server: NatsServer,
) -> None:
    await create_database(own_postgres.dsn, "outages")
    deployment = Deployment(
        "scale-out",
        tmp_path / "data",
        store=database_dsn(own_postgres.dsn, "outages"),
        bus=own_nats_server.url,
        bus_prefix=f"t{uuid.uuid4().hex[:12]}",
    )
    acknowledged: set[str] = set()
    refused: list[httpx.Response] = []

    async def sign_ups(numbers: range, server: Server) -> None:
        for n in numbers:
            r = await sign_up(server, n)
            if r.status_code == 200:
                acknowledged.add(f"out-{n}@example.com")
            else:
                refused.append(r)

    async with running_server(project_dir, deployment) as server:
        await sign_ups(range(0, 5), server)
        await sink.wait_until(lambda: len(sink.received) == 5, within=15)

        # The bus goes away: events are still durable, so still accepted.
        own_nats_server.stop()
        await sign_ups(range(5, 10), server)
        assert len(acknowledged) == 10 and not refused
        own_nats_server.start()
        await sink.wait_until(lambda: len(sink.received) == 10, within=40)

        # The database goes away: nothing can be stored, so nothing is acknowledged.
        own_postgres.stop()
        await sign_ups(range(10, 13), server)
        assert len(acknowledged) == 10
        assert refused and all(r.status_code == 503 for r in refused)
        assert "unavailable" in refused[0].json()["error"]
        own_postgres.start()
        async with asyncio.timeout(30):
            # Polling is the point: the pool reconnects on the next request after the restart.
            while (await sign_up(server, 13)).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
        acknowledged.add("out-13@example.com")
        await sign_ups(range(14, 20), server)
        await sink.wait_until(lambda: acknowledged <= {r.rcpt for r in sink.received}, within=40)
        await asyncio.sleep(1.0)  # let any late double show itself

    assert {r.rcpt for r in sink.received} == acknowledged
    assert sink.distinct_and_doubles() == (len(acknowledged), 0)
