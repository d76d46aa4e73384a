"""Scale-out through outages: NATS, or PostgreSQL, stops and starts again mid-run.

While the bus is down, ingestion goes on (the log is PostgreSQL) and the emails follow once it
is back, each once. While PostgreSQL is down, ingestion answers 503 with the reason, never a
false 2xx, and takes events again once it is back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from bench.servers import NatsServer, Postgres, create_database, database_dsn, embedded_postgres

from tests.e2e.conftest import WRITE_KEY, Deployment, Sink, running_server
from tests.e2e.test_scale_out import Cluster


@pytest.fixture
async def own_postgres() -> AsyncIterator[Postgres]:
    """A server of this test's own, to stop and start again."""
    with embedded_postgres() as server:
        yield server


async def sign_up(client: httpx.AsyncClient, n: int) -> httpx.Response:
    user = f"out-{n}"
    traits = {"email": f"{user}@example.com"}
    r = await client.post("/v1/identify", json={"userId": user, "traits": traits})
    if r.status_code != 200:
        return r
    return await client.post("/v1/track", json={"userId": user, "event": "Signed Up"})


class SignUps:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.acknowledged: set[str] = set()
        self.attempted: set[str] = set()
        self.refused: list[httpx.Response] = []
        self._next = 0

    async def one(self) -> bool:
        n, self._next = self._next, self._next + 1
        self.attempted.add(f"out-{n}@example.com")
        try:
            r = await sign_up(self.client, n)
        except httpx.TimeoutException:
            return False  # not acknowledged, so owed nothing
        if r.status_code == 200:
            self.acknowledged.add(f"out-{n}@example.com")
            return True
        self.refused.append(r)
        return False

    async def run(self, count: int) -> None:
        for _ in range(count):
            await self.one()

    async def through(self, outage: Callable[[], Awaitable[None]], *, after: int = 10) -> None:
        """Sign up steadily before, during and after `outage`, until `after` more are
        acknowledged once it is over."""
        over = asyncio.Event()

        async def load() -> None:
            while not over.is_set():
                await self.one()
                await asyncio.sleep(0.03)
            taken = 0
            while taken < after:
                taken += await self.one()
                await asyncio.sleep(0.03)

        running = asyncio.create_task(load())
        await asyncio.sleep(0.5)
        await outage()
        over.set()
        async with asyncio.timeout(60):
            await running


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
        sign_ups = SignUps(server.client)
        await sign_ups.run(5)
        await sink.wait_until(lambda: len(sink.received) == 5, within=15)
        yield sign_ups


def restart(server: Postgres | NatsServer, down_for: float) -> Callable[[], Awaitable[None]]:
    # In threads: the pipeline and the SMTP sink share this test's loop.
    async def outage() -> None:
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(server.start)

    return outage


async def assert_each_delivered_once(sign_ups: SignUps, sink: Sink) -> None:
    """Every acknowledged sign-up gets its one email. So may one whose answer was an error
    although it was stored (the connection broke during its COMMIT): a 503 never claims that
    nothing was stored, and the client's retry with the same messageId would be dropped."""
    wanted = sign_ups.acknowledged
    await sink.wait_until(lambda: wanted <= {r.rcpt for r in sink.received}, within=60)
    await asyncio.sleep(1.0)  # let any late double show itself
    received = {r.rcpt for r in sink.received}
    assert wanted <= received <= sign_ups.attempted
    assert sink.distinct_and_doubles() == (len(received), 0)


def assert_refused_while_down(sign_ups: SignUps) -> None:
    """Nothing could be stored while the database was down, so nothing was acknowledged."""
    assert sign_ups.refused and all(r.status_code == 503 for r in sign_ups.refused)
    assert "the event log is unavailable" in sign_ups.refused[0].json()["error"]


async def test_a_bus_restart_under_load_pauses_sending_and_loses_nothing(
    running: SignUps, sink: Sink, own_nats_server: NatsServer
) -> None:
    await running.through(restart(own_nats_server, 1.5))
    # The log is PostgreSQL: the bus going away refused nothing.
    assert not running.refused
    await assert_each_delivered_once(running, sink)


async def test_a_database_restart_under_load_refuses_with_503_and_loses_nothing(
    running: SignUps, sink: Sink, own_postgres: Postgres
) -> None:
    await running.through(restart(own_postgres, 1.5))
    assert_refused_while_down(running)
    await assert_each_delivered_once(running, sink)


@pytest.mark.parametrize("down_for", [0.3, 6.0])
async def test_a_database_restart_with_worker_processes_loses_nothing(
    project_dir: Path, sink: Sink, own_postgres: Postgres, nats_server: str, down_for: float
) -> None:
    """The same outage with an API process and two worker processes: every pool, lease
    session and stage in each of them must find its way back, after a blip as after a
    longer stop (the lease sessions die with the server either way)."""
    await create_database(own_postgres.dsn, "outages")
    cluster = Cluster(project_dir, database_dsn(own_postgres.dsn, "outages"), nats_server)
    try:
        await cluster.start(workers=2)
        async with httpx.AsyncClient(
            base_url=cluster.base, auth=(WRITE_KEY, ""), timeout=10
        ) as client:
            sign_ups = SignUps(client)
            await sign_ups.through(restart(own_postgres, down_for))
        assert_refused_while_down(sign_ups)
        await assert_each_delivered_once(sign_ups, sink)
    finally:
        await cluster.stop()
