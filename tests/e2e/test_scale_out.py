"""Scale-out end to end: one API process and three workers over real PostgreSQL and NATS
JetStream; a worker is killed with -9 mid-run and its partitions move to the others.

Per-contact order is checked through what each email says: every contact changes its plan
three times, then signs up; the welcome email shows the plan, so an identify folded after the
sign-up would show an older one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
from bench.servers import wait_partitions_owned

from tests.e2e.conftest import WRITE_KEY, Sink, free_port
from tests.e2e.test_crash import assert_no_process_for, wait_healthy

USERS = 240
PARTITIONS = 8
PLANS = ("v1", "v2", "v3")


def mailpulse(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A mailpulse process writing to `log`: kept with the test's temporary files, to read
    after a failure."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mailpulse.cli", *args], stdout=out, stderr=subprocess.STDOUT
        )


class Cluster:
    def __init__(self, project: Path, store: str, bus: str) -> None:
        self.common = [
            "--project",
            str(project),
            "--store",
            store,
            "--bus",
            bus,
            "--partitions",
            str(PARTITIONS),
            "--bus-prefix",
            f"t{uuid.uuid4().hex[:12]}",
        ]
        self.store = store
        self.logs = project.parent
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    async def start(self, workers: int, *, metrics_ports: Sequence[int] = ()) -> None:
        """`metrics_ports`: one per worker, where it serves its /metrics (0: nowhere)."""
        self.api = mailpulse(self.logs / "api.log", "serve", *self.common, "--port", str(self.port))
        await wait_healthy(self.base, self.api)
        ports = metrics_ports or [0] * workers
        self.workers = [
            mailpulse(
                self.logs / f"worker-{n}.log", "worker", *self.common, "--metrics-port", str(port)
            )
            for n, port in enumerate(ports)
        ]
        await wait_partitions_owned(self.store, PARTITIONS, workers)

    async def stop(self) -> None:
        """SIGTERM, and wait without blocking the loop: the SMTP sink of the test lives on
        it, and the workers' couriers say QUIT to it on their way out."""
        procs = [p for p in (*self.workers, self.api) if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)


async def test_a_killed_worker_loses_nothing_and_keeps_order(
    project_dir: Path, sink: Sink, postgres_dsn: str, nats_server: str
) -> None:
    sink.delay = 0.01  # a slow receiver: acknowledged events are still waiting at the kill
    cluster = Cluster(project_dir, postgres_dsn, nats_server)
    acknowledged: set[str] = set()
    try:
        await cluster.start(workers=3)

        async def contact_lives(n: int, client: httpx.AsyncClient) -> None:
            user = f"so-{n}"
            email = f"{user}@example.com"
            with contextlib.suppress(httpx.TransportError):
                for plan in PLANS:
                    traits = {"email": email, "plan": plan, "first_name": f"P{n}"}
                    r = await client.post("/v1/identify", json={"userId": user, "traits": traits})
                    assert r.status_code == 200, r.text
                r = await client.post("/v1/track", json={"userId": user, "event": "Signed Up"})
                assert r.status_code == 200, r.text
                acknowledged.add(email)

        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(
            base_url=cluster.base, auth=(WRITE_KEY, ""), limits=limits, timeout=10
        ) as client:
            load = asyncio.gather(*(contact_lives(n, client) for n in range(USERS)))
            await sink.wait_until(lambda: len(sink.received) >= USERS // 4, within=60)
            victim = cluster.workers[0]
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            sent_before_kill = len(sink.received)
            await load
        assert len(acknowledged) == USERS, "the API node is not the one killed: all accepted"
        assert sent_before_kill < USERS, "the kill must land mid-run"
        # The dead worker's partitions go to the two others.
        await wait_partitions_owned(cluster.store, PARTITIONS, 2)
        await sink.wait_until(lambda: acknowledged <= {r.rcpt for r in sink.received}, within=90)
        await asyncio.sleep(1.0)  # let any late double show itself
    finally:
        await cluster.stop()

    await asyncio.to_thread(assert_no_process_for, project_dir)
    distinct, doubles = sink.distinct_and_doubles()
    print(
        f"\nscale-out crash test: {len(acknowledged)} contacts, {sent_before_kill} emails before "
        f"kill -9 of one of 3 workers, {distinct} distinct emails, {doubles} doubles"
    )
    assert {r.rcpt for r in sink.received} == acknowledged
    # Doubles: only transactions in flight in the killed worker (8 SMTP connections).
    assert doubles <= 8
    for r in sink.received:
        body = r.message.get_body(("html",)).get_content()
        assert f"your plan is {PLANS[-1]}" in body, (r.rcpt, "an identify was folded late")
