"""Direct-to-MX delivery end to end: each domain's mail reaches its own mail hosts (real
SMTP servers on loopback addresses, found through a real DNS server), the next host when the
first does not answer, and a domain with a null MX bounces at once. (Recipients are under
example.net: the policy gate refuses special-use names such as .test.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.dns_server import DnsServer
from tests.e2e.conftest import Deployment, Sink, free_port, running_server, write_project
from tests.e2e.test_shaping import sign_ups


@pytest.fixture
async def mail_hosts() -> AsyncIterator[tuple[Sink, Sink]]:
    """Two mail hosts on one port, as MX hosts are: 127.0.0.2 and 127.0.0.3."""
    port = free_port()
    hosts = (Sink(host="127.0.0.2", port=port), Sink(host="127.0.0.3", port=port))
    for host in hosts:
        await host.start()
    yield hosts
    for host in hosts:
        await host.stop()


def mx_project(root: Path, mx_port: int, dns: DnsServer, extra: str = "") -> Path:
    # The relay port is nobody's: under route = "mx" nothing goes there.
    project = write_project(root, free_port())
    toml = project / "mailpulse.toml"
    text = toml.read_text().replace(
        "max_connections = 8", f'max_connections = 8\nroute = "mx"\nmx_port = {mx_port}'
    )
    toml.write_text(text + f'nameservers = ["{dns.address}"]\n' + extra)
    return project


async def test_each_domain_to_its_own_mail_hosts(
    tmp_path: Path, mail_hosts: tuple[Sink, Sink], dns_server: DnsServer
) -> None:
    alpha_host, beta_host = mail_hosts
    dns_server.zone.update(
        {
            "alpha.example.net": {"mx": [(10, "mx.alpha.example.net")]},
            "mx.alpha.example.net": {"a": ["127.0.0.2"]},
            # beta's first host answers nobody: its mail goes to the second
            "beta.example.net": {
                "mx": [(20, "mx2.beta.example.net"), (10, "mx1.beta.example.net")]
            },
            "mx1.beta.example.net": {"a": ["127.0.0.4"]},
            "mx2.beta.example.net": {"a": ["127.0.0.3"]},
            # no MX: the domain's own address takes its mail
            "gamma.example.net": {"a": ["127.0.0.2"]},
            "nomail.example.net": {"mx": [(0, ".")]},
        }
    )
    project = mx_project(tmp_path / "project", alpha_host.port, dns_server)
    alpha = [f"a{n}@alpha.example.net" for n in range(5)]
    beta = [f"b{n}@beta.example.net" for n in range(5)]
    async with running_server(project, Deployment("embedded", tmp_path / "data")) as server:
        r = await server.send(
            "batch", sign_ups([*alpha, *beta, "g@gamma.example.net", "n@nomail.example.net"])
        )
        assert r.status_code == 200, r.text
        await alpha_host.wait_until(lambda: len(alpha_host.received) >= 6)
        await beta_host.wait_until(lambda: len(beta_host.received) >= 5)
        bounced = await server.wait_event("shaped-11", "Email Bounced")
        null_mx_events = [e["event"] for e in await server.events("shaped-11")]
        status = await server.admin.get("/admin/shaping")
        unauthorized = await server.client.get("/admin/shaping")

    assert sorted(r.rcpt for r in alpha_host.received) == sorted([*alpha, "g@gamma.example.net"])
    assert sorted(r.rcpt for r in beta_host.received) == sorted(beta)
    props = bounced["properties"]
    assert (props["smtp_code"], props["smtp_status"]) == (556, "5.1.10")
    assert "null MX" in props["smtp_text"]
    assert "Email Deferred" not in null_mx_events  # bounced at once, never retried
    # Under route = "mx" the built-in rules are in force: the providers', by domain and mx.
    assert unauthorized.status_code == 401
    body = status.json()
    assert body["route"] == "mx" and body["sending"] and body["quotas"] == []
    google = [rule for rule in body["rules"] if rule["name"] == "google"]
    assert {(rule["domain"], rule["mx"]) for rule in google} >= {
        ("gmail.com", None),
        (None, "google.com"),
    }
    assert all(
        (r["builtin"], r["connections"], r["backoff"], r["in_flight"]) == (True, 5, 1.0, 0)
        for r in google
    )
