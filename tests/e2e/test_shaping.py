"""Shaping end to end: mail to a limited destination reaches the SMTP sink at its rule's rate,
in embedded mode and from two scale-out workers together, while mail elsewhere goes at once;
a rule may match by the domains' mail hosts (through a real DNS server) and limit how many
transactions are open at once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailpulse.runtime.leases import APPLICATION_NAME
from tests.dns_server import DnsServer
from tests.e2e.conftest import (
    WRITE_KEY,
    Deployment,
    Received,
    Sink,
    free_port,
    running_server,
    write_project,
)
from tests.e2e.test_scale_out import PARTITIONS, Cluster

TOLERANCE = 0.25


def shaped_project(root: Path, smtp_port: int, rules: dict[str, str], extra: str = "") -> Path:
    project = write_project(root, smtp_port)
    toml = project / "mailpulse.toml"
    tables = "".join(
        f'\n[[delivery.shaping]]\ndomain = "{domain}"\nrate = "{rate}"\n'
        for domain, rate in rules.items()
    )
    toml.write_text(toml.read_text() + extra + tables)
    return project


def sign_ups(emails: Iterable[str]) -> dict:
    """One /v1/batch body: every address signs up (the welcome journey sends it one email)."""
    calls = []
    for n, email in enumerate(emails):
        user = f"shaped-{n}"
        calls.append({"type": "identify", "userId": user, "traits": {"email": email}})
        calls.append({"type": "track", "userId": user, "event": "Signed Up"})
    return {"batch": calls}


def arrivals(sink: Sink, domain: str) -> list[Received]:
    """What reached the sink for `domain` and its subdomains, in arrival order."""
    return sorted(
        (r for r in sink.received if r.rcpt.endswith(("@" + domain, "." + domain))),
        key=lambda r: r.at,
    )


def arrival_rate(received: list[Received]) -> float:
    return (len(received) - 1) / (received[-1].at - received[0].at)


async def test_each_destination_at_its_rate_and_others_unhindered(
    tmp_path: Path, sink: Sink
) -> None:
    project = shaped_project(
        tmp_path / "project", sink.port, {"example.com": "20/s", "example.org": "600/m"}
    )
    # A subdomain shares its parent's rule; example.net has none. The limited ones come first.
    com = [f"c{n}@example.com" if n % 2 else f"c{n}@eu.example.com" for n in range(40)]
    org = [f"o{n}@example.org" for n in range(20)]
    net = [f"n{n}@example.net" for n in range(20)]
    async with running_server(project, Deployment("embedded", tmp_path / "data")) as server:
        r = await server.send("batch", sign_ups(com + org + net))
        assert r.status_code == 200, r.text
        await sink.wait_until(lambda: len(sink.received) >= 80, within=15)
        registry = server.pipeline.metrics.registry

    assert sorted(r.rcpt for r in sink.received) == sorted(com + org + net)
    to_com, to_org, to_net = (
        arrivals(sink, d) for d in ("example.com", "example.org", "example.net")
    )
    print(
        f"\nembedded shaping: example.com {arrival_rate(to_com):.1f}/s (rule 20/s), "
        f"example.org {arrival_rate(to_org):.1f}/s (rule 10/s), all of example.net (no rule) "
        f"within {to_net[-1].at - to_net[0].at:.2f} s"
    )
    assert arrival_rate(to_com) == pytest.approx(20.0, rel=TOLERANCE)
    assert arrival_rate(to_org) == pytest.approx(10.0, rel=TOLERANCE)
    # Had the waiting sends held the sender's delivery slots, example.net would come after
    # most of them.
    assert to_net[-1].at < to_com[len(to_com) // 2].at
    waits = {
        rule: registry.get_sample_value("mailpulse_shaping_wait_seconds_count", {"rule": rule})
        for rule in ("example.com", "example.org", "*")
    }
    assert waits == {"example.com": 40, "example.org": 20, "*": None}


async def test_a_provider_by_its_mail_hosts_and_a_destination_by_its_connections(
    tmp_path: Path, sink: Sink, dns_server: DnsServer
) -> None:
    """Two domains whose mail hosts are one provider's share its rule's rate; another rule's
    destination never has more transactions open than its connections."""
    dns_server.zone.update(
        {
            "a.example.net": {"mx": [(10, "mx1.provider.example.org")]},
            "b.example.net": {"mx": [(5, "in.mx2.provider.example.org")]},
            "c.example.net": {"mx": [(10, "mx.elsewhere.example.org")]},
        }
    )
    extra = (
        f'nameservers = ["{dns_server.address}"]\n'
        '\n[[delivery.shaping]]\nmx = "provider.example.org"\nrate = "20/s"\n'
        '\n[[delivery.shaping]]\ndomain = "example.com"\nconnections = 2\n'
    )
    project = shaped_project(tmp_path / "project", sink.port, {"example.org": "10/s"}, extra)
    sink.delay = 0.05  # each message takes a while: transactions overlap unless limited
    provider = [f"p{n}@{'a' if n % 2 else 'b'}.example.net" for n in range(40)]
    org = [f"o{n}@example.org" for n in range(20)]
    com = [f"c{n}@example.com" for n in range(24)]
    elsewhere = [f"e{n}@c.example.net" for n in range(16)]
    async with running_server(project, Deployment("embedded", tmp_path / "data")) as server:
        r = await server.send("batch", sign_ups(provider + org + com + elsewhere))
        assert r.status_code == 200, r.text
        await sink.wait_until(lambda: len(sink.received) >= 100, within=20)
        registry = server.pipeline.metrics.registry

    to_provider = sorted(
        (r for r in sink.received if r.rcpt.endswith(("@a.example.net", "@b.example.net"))),
        key=lambda r: r.at,
    )
    to_org = arrivals(sink, "example.org")
    print(
        f"\nby mail host: provider {arrival_rate(to_provider):.1f}/s (rule 20/s), "
        f"example.org {arrival_rate(to_org):.1f}/s (rule 10/s), at most "
        f"{sink.most_busy['example.com']} of example.com's at once (rule 2), "
        f"{sink.most_busy['c.example.net']} of c.example.net's (no rule)"
    )
    assert len(to_provider) == 40
    assert arrival_rate(to_provider) == pytest.approx(20.0, rel=TOLERANCE)
    assert arrival_rate(to_org) == pytest.approx(10.0, rel=TOLERANCE)
    assert sink.most_busy["example.com"] == 2
    assert sink.most_busy["c.example.net"] > 2  # what example.com would see without its rule
    waits = registry.get_sample_value(
        "mailpulse_shaping_wait_seconds_count", {"rule": "mx:provider.example.org"}
    )
    assert waits == 40


async def test_the_global_rate_holds_all_destinations_together(tmp_path: Path, sink: Sink) -> None:
    extra = '\n[delivery.limits]\nrate = "20/s"\n'
    project = shaped_project(tmp_path / "project", sink.port, {}, extra)
    emails = [f"g{n}@example.{'net' if n % 2 else 'org'}" for n in range(40)]
    async with running_server(project, Deployment("embedded", tmp_path / "data")) as server:
        r = await server.send("batch", sign_ups(emails))
        assert r.status_code == 200, r.text
        await sink.wait_until(lambda: len(sink.received) >= len(emails), within=15)

    rate = arrival_rate(sorted(sink.received, key=lambda r: r.at))
    print(f"\nglobal rate: {rate:.1f}/s over two domains without rules ([delivery.limits] 20/s)")
    assert sorted(r.rcpt for r in sink.received) == sorted(emails)
    assert rate == pytest.approx(20.0, rel=TOLERANCE)


async def shaped_sends(metrics_port: int, rule: str) -> float:
    """How many sends a worker let wait for `rule`, from its /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mailpulse_shaping_wait_seconds_count" and sample.labels == {
                "rule": rule
            }:
                return sample.value
    return 0.0


async def wait_balanced(dsn: str, workers: int, within: float = 30) -> None:
    """Until each worker holds its even share of the partitions: a partition handed on during
    the test would pause its sends for the handover, and the rate measured with them."""
    conn = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(within):
            while True:
                held = await conn.fetch(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND a.application_name = $1 GROUP BY l.pid",
                    APPLICATION_NAME,
                )
                if sorted(n for (n,) in held) == [PARTITIONS // workers] * workers:
                    return
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def test_two_workers_together_keep_one_rate(
    tmp_path: Path, sink: Sink, postgres_dsn: str, nats_server: str
) -> None:
    project = shaped_project(tmp_path / "project", sink.port, {"example.com": "20/s"})
    emails = [f"w{n}@example.com" for n in range(60)]
    cluster = Cluster(project, postgres_dsn, nats_server)
    metrics_ports = [free_port(), free_port()]
    try:
        await cluster.start(workers=2, metrics_ports=metrics_ports)
        await wait_balanced(postgres_dsn, workers=2)
        # A partition handed on keeps its old owner's last pull of the bus open for a while
        # (the bus's long poll, 5 s); sends published into it reach the new owner only after
        # ack_wait. Those late ones would measure the handover, not the shaping.
        await asyncio.sleep(5.5)
        async with httpx.AsyncClient(
            base_url=cluster.base, auth=(WRITE_KEY, ""), timeout=10
        ) as client:
            r = await client.post("/v1/batch", json=sign_ups(emails))
            assert r.status_code == 200, r.text
        await sink.wait_until(lambda: len(sink.received) >= len(emails), within=30)
        per_worker = [await shaped_sends(port, "example.com") for port in metrics_ports]
    finally:
        await cluster.stop()

    assert sorted(r.rcpt for r in sink.received) == sorted(emails)
    rate = arrival_rate(arrivals(sink, "example.com"))
    print(f"\nscale-out shaping: 2 workers sent {per_worker}, together {rate:.1f}/s (rule 20/s)")
    assert all(per_worker), "both workers send to the destination"
    assert sum(per_worker) == len(emails)
    assert rate == pytest.approx(20.0, rel=TOLERANCE), "one rate for both, not one each"
