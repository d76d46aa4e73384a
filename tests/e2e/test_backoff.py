"""A destination that answers 421 4.7.0 ("slow down") gets a lower rate from then on, and
every message still arrives once, after its retry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, Server, Sink, write_project

RATE_RULE = '[[delivery.shaping]]\ndomain = "example.com"\nrate = "50/s"\n'


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    root = write_project(tmp_path / "project", sink.port)
    toml = root / "mailpulse.toml"
    toml.write_text(toml.read_text() + "\n" + RATE_RULE)
    return root


async def test_a_421_storm_slows_the_destination_and_loses_nothing(
    server: Server, sink: Sink, deployment: Deployment
) -> None:
    users = [f"throttle-1.u{n}" for n in range(10)]
    for user in users:
        traits = {"email": f"{user}@example.com"}
        assert (
            await server.send("identify", {"userId": user, "traits": traits})
        ).status_code == 200
        assert (
            await server.send("track", {"userId": user, "event": "Signed Up"})
        ).status_code == 200
    await sink.wait_until(lambda: len(sink.received) >= len(users), within=30)
    assert sorted(r.rcpt for r in sink.received) == sorted(f"{u}@example.com" for u in users)
    assert sum(1 for _, code in sink.refused if code == "421") == len(users)
    if deployment.mode == "embedded":  # in scale-out, the senders' metrics are the workers'
        registry = server.pipeline.metrics.registry
        backoff = registry.get_sample_value(
            "mailpulse_shaping_backoff_ratio", {"rule": "example.com"}
        )
        assert backoff is not None and backoff < 1.0
