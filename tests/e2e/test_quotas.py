"""A send quota end to end: of N + k sends in one hour under an hourly quota of N, N go, k are
held until the hour turns, then go; none is lost or doubled. The pipeline's clock is moved on
an hour instead of waiting for one."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

from tests.e2e.conftest import Deployment, Server, Sink, running_server, write_project
from tests.e2e.test_shaping import sign_ups

QUOTA = 3
MORE = 2


class MovableClock:
    """The wall clock from the first second of the next hour on, moved on by `advance`."""

    def __init__(self) -> None:
        self.offset = math.ceil(time.time() / 3600) * 3600 + 1 - time.time()

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def held_events(server: Server, contacts: int, count: int) -> list[dict]:
    """Once there are `count`, the `Email Held` events of the signed-up contacts."""
    async with asyncio.timeout(10):
        while True:
            held = [
                event
                for n in range(contacts)
                for event in await server.events(f"shaped-{n}")
                if event["event"] == "Email Held"
            ]
            if len(held) >= count:
                return held
            await asyncio.sleep(0.1)


async def test_an_hourly_quota_holds_the_rest_until_the_hour_turns(
    tmp_path: Path, sink: Sink
) -> None:
    project = write_project(tmp_path / "project", sink.port)
    toml = project / "mailpulse.toml"
    toml.write_text(toml.read_text() + f"\n[delivery.limits]\nhourly = {QUOTA}\n")
    clock = MovableClock()
    hour_ends = math.ceil(clock() / 3600) * 3600
    emails = [f"q{n}@example.com" for n in range(QUOTA + MORE)]
    deployment = Deployment("embedded", tmp_path / "data")
    async with running_server(project, deployment, clock=clock) as server:
        r = await server.send("batch", sign_ups(emails))
        assert r.status_code == 200, r.text
        await sink.wait_until(lambda: len(sink.received) >= QUOTA)
        held = await held_events(server, len(emails), MORE)
        await asyncio.sleep(1.5)  # a retry sweep or more: still nothing beyond the quota
        assert len(sink.received) == QUOTA
        assert [(e["properties"]["reason"], e["properties"]["until"]) for e in held] == [
            ("quota", hour_ends)
        ] * MORE

        status = (await server.admin.get("/admin/shaping")).json()
        assert status["quotas"] == [
            {"name": "hourly", "limit": QUOTA, "used": QUOTA, "window_ends_at": hour_ends}
        ]
        registry = server.pipeline.metrics.registry
        assert registry.get_sample_value("mailpulse_quota_used", {"quota": "hourly"}) == QUOTA
        assert registry.get_sample_value("mailpulse_quota_limit", {"quota": "hourly"}) == QUOTA

        clock.advance(hour_ends - clock() + 1)
        await sink.wait_until(lambda: len(sink.received) >= len(emails), within=10)

        status = (await server.admin.get("/admin/shaping")).json()
        assert status["quotas"][0]["used"] == MORE  # the new hour's

    assert sorted(r.rcpt for r in sink.received) == sorted(emails)
    assert sink.distinct_and_doubles() == (len(emails), 0)
