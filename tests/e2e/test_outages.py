"""Scale-out through outages: NATS, or PostgreSQL, stops and starts again mid-run.

While the bus is down, ingestion goes on (the log is PostgreSQL) and the emails follow once it
is back, each once. While PostgreSQL is down, ingestion answers 503 with the reason, never a
false 2xx, and takes events again once it is back.
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


class SignUps:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.acknowledged: set[str] = set()
        self.refused: list[httpx.Response] = []

    async def run(self, numbers: range) -> None:
        for n in numbers:
            r = await sign_up(self.server, n)
            if r.status_code == 200:
                self.acknowledged.add(f"out-{n}@example.com")
            else:
                self.refused.append(r)


@pytest.fixture
async def running(
    project_dir: Path,
    tmp_path: Path,
    sink: Sink,
    own_postgres: Postgres,
    own_nats_server: NatsServer,
) -> AsyncIterator[SignUps]:
    """A scale-out API node and worker on servers of the test's own, with five sign-ups
    already delivered."""
    await create_database(own_postgres.dsn, "outages")
    deployment = Deployment(
        "scale-out",
        tmp_path / "data",
        store=database_dsn(own_postgres.dsn, "outages"),
        bus=own_nats_server.url,
        bus_prefix=f"t{uuid.uuid4().hex[:12]}",
    )
    async with running_server(project_dir, deployment) as server:
        sign_ups = SignUps(server)
        await sign_ups.run(range(0, 5))
        await sink.wait_until(lambda: len(sink.received) == 5, within=15)
        yield sign_ups


async def test_a_bus_restart_pauses_sending_and_loses_nothing(
    running: SignUps, sink: Sink, own_nats_server: NatsServer
) -> None:
    sign_ups = running
    # The bus goes away: events are still durable, so still accepted.
    own_nats_server.stop()
    await sign_ups.run(range(5, 10))
    assert len(sign_ups.acknowledged) == 10 and not sign_ups.refused
    own_nats_server.start()
    await sign_ups.run(range(10, 15))
    await sink.wait_until(lambda: len(sink.received) == 15, within=40)
    await asyncio.sleep(1.0)  # let any late double show itself
    assert {r.rcpt for r in sink.received} == sign_ups.acknowledged
    assert sink.distinct_and_doubles() == (15, 0)


async def test_while_the_database_is_down_ingestion_answers_503_and_then_resumes(
    running: SignUps, sink: Sink, own_postgres: Postgres
) -> None:
    sign_ups = running
    # Nothing can be stored, so nothing is acknowledged.
    own_postgres.stop()
    await sign_ups.run(range(5, 8))
    assert len(sign_ups.acknowledged) == 5
    assert sign_ups.refused and all(r.status_code == 503 for r in sign_ups.refused)
    assert "the event log is unavailable" in sign_ups.refused[0].json()["error"]
    own_postgres.start()
    async with asyncio.timeout(30):
        # Polling is the point: the pool reconnects on the next request after the restart.
        while (await sign_up(sign_ups.server, 8)).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
    # Of what was acknowledged before the outage, nothing was lost or doubled.
    assert sign_ups.acknowledged <= {r.rcpt for r in sink.received}
    assert sink.distinct_and_doubles()[1] == 0
