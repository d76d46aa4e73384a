"""Rate limits on the public pages and links, per client address: token buckets that refill
at the configured rate, a 429 with Retry-After and a reason (HTML to a browser, JSON
otherwise), an IPv6 client counted by its /64, memory bounded however many clients come;
and on a real server, only the public paths limited."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.api.public_limits import ClientBuckets, client_of
from mailpulse.errors import ProjectError
from mailpulse.project import PublicLimit, load_project
from tests.e2e.conftest import WRITE_KEY, Deployment, Server, Sink, running_server, write_project


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_holds_burst_and_refills_at_rate() -> None:
    clock = Clock()
    buckets = ClientBuckets(PublicLimit(rate=2.0, burst=3), clock=clock)
    assert [buckets.take("1.2.3.4") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("1.2.3.4") == pytest.approx(0.5)  # a token comes every half second
    assert buckets.take("5.6.7.8") == 0.0  # another client, another bucket
    clock.now += 0.5
    assert buckets.take("1.2.3.4") == 0.0
    assert buckets.take("1.2.3.4") == pytest.approx(0.5)
    clock.now += 3600  # refilled, never beyond the burst
    assert [buckets.take("1.2.3.4") for _ in range(4)][-1] == pytest.approx(0.5)


def test_a_token_given_back_is_taken_again_but_never_beyond_the_burst() -> None:
    clock = Clock()
    buckets = ClientBuckets(PublicLimit(rate=1.0, burst=2), clock=clock)
    buckets.give_back("1.2.3.4")  # nothing taken yet: no bucket is made
    assert len(buckets) == 0
    assert [buckets.take("1.2.3.4") for _ in range(2)] == [0.0, 0.0]
    buckets.give_back("1.2.3.4")
    assert buckets.take("1.2.3.4") == 0.0
    assert buckets.take("1.2.3.4") == pytest.approx(1.0)
    clock.now += 3600
    for _ in range(5):
        buckets.give_back("1.2.3.4")
    assert [buckets.take("1.2.3.4") for _ in range(3)][-1] == pytest.approx(1.0)


def test_memory_is_bounded_and_the_least_recent_go_first() -> None:
    clock = Clock()
    buckets = ClientBuckets(PublicLimit(rate=1.0, burst=1), max_clients=100, clock=clock)
    assert buckets.take("10.0.0.1") == 0.0
    for n in range(2, 10_000):
        buckets.take(f"10.0.{n // 256}.{n % 256}")
        assert len(buckets) <= 100
    assert buckets.take("10.0.0.1") == 0.0  # long gone: a fresh bucket
    assert buckets.take("10.0.39.15") > 0  # among the latest: still empty


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_an_ipv6_client_is_its_slash_64(low: int) -> None:
    network = 0x2001_0DB8_0000_0001 << 64
    host = str(ipaddress.IPv6Address(network | low))
    assert client_of({"client": (host, 1)}) == "2001:db8:0:1::"
    assert client_of({"client": ("192.0.2.7", 1)}) == "192.0.2.7"
    assert client_of({"client": None}) == ""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    sink = Sink()
    await sink.start()
    project = write_project(tmp_path / "project", sink.port)
    toml = project / "mailpulse.toml"
    toml.write_text(toml.read_text() + '\n[public]\nrate = "1/m"\nburst = 3\n')
    try:
        async with running_server(project, Deployment("embedded", tmp_path / "data")) as s:
            yield s
    finally:
        await sink.stop()


async def test_public_paths_are_limited_per_client_and_nothing_else(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base) as c:
        for _ in range(3):
            r = await c.get("/u/some-token")
            assert r.status_code != 429
        r = await c.post("/u/some-token", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "60"
        assert r.json()["error"] == (
            "too many requests from your address: at most 0.0166667 a second (3 at once); "
            "try again in 60 s"
        )
        # One bucket for all the public paths; a browser is answered in HTML.
        r = await c.get("/p/x", headers={"Accept": "text/html,application/xhtml+xml"})
        assert r.status_code == 429 and r.headers["content-type"].startswith("text/html")
        assert "try again in 60 s" in r.text and r.headers["retry-after"] == "60"
        assert (await c.get("/o/x")).status_code == 429 and (await c.get("/c/x")).status_code == 429

        # Another client (behind the trusted local proxy) has its own bucket.
        other = {"X-Forwarded-For": "198.51.100.4"}
        assert (await c.get("/u/some-token", headers=other)).status_code != 429

        # The tracking API and the admin API are not limited here.
        for _ in range(5):
            r = await c.post("/v1/track", json={"userId": "u", "event": "e"}, auth=(WRITE_KEY, ""))
            assert r.status_code == 200
            assert (await server.admin.get("/admin/keys")).status_code == 200
    metrics = (await server.admin.get("/metrics")).text
    assert 'mailpulse_public_rate_limited_total{prefix="/u/"} 1.0' in metrics


async def test_a_throwaway_public_route_answers_until_the_limit(tmp_path: Path) -> None:
    """With a route of its own under /u/ (whatever else serves that prefix)."""
    from mailpulse.api import create_app
    from mailpulse.runtime.pipeline import Pipeline

    project = write_project(tmp_path / "project", 2525)
    toml = project / "mailpulse.toml"
    toml.write_text(toml.read_text() + '\n[public]\nrate = "2/h"\nburst = 2\n')
    router = APIRouter()

    @router.get("/u/throwaway/{n}", response_class=PlainTextResponse)
    async def throwaway(n: str) -> str:
        return f"ok {n}"

    pipeline = Pipeline.embedded(load_project(project), tmp_path / "data")
    await pipeline.start()
    try:
        app = create_app(pipeline, extra_routers=[router])
        transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            assert (await c.get("/u/throwaway/1")).text == "ok 1"
            assert (await c.get("/u/throwaway/2")).text == "ok 2"
            r = await c.get("/u/throwaway/3")
            assert r.status_code == 429 and r.headers["retry-after"] == "1800"
            # The document says so, of every public route.
            schema = (await c.get("/openapi.json")).json()
            answers = schema["paths"]["/u/throwaway/{n}"]["get"]["responses"]
            assert "Retry-After" in answers["429"]["headers"]
            assert "429" not in schema["paths"]["/admin/keys"]["get"]["responses"]
    finally:
        await pipeline.stop()


@pytest.mark.parametrize(
    ("added", "needle", "message"),
    [
        ('[public]\nrate = "lots"', "rate =", "[public] rate: not a rate"),
        ("[public]\nburst = 0", "burst =", "Expected `int` >= 1"),
        ("[public]\nburts = 3", "burts", "did you mean 'burst'"),
    ],
)
def test_bad_limits_name_their_line(tmp_path: Path, added: str, needle: str, message: str) -> None:
    project = write_project(tmp_path / "p", 2525)
    toml = project / "mailpulse.toml"
    toml.write_text(toml.read_text() + "\n" + added + "\n")
    with pytest.raises(ProjectError) as err:
        load_project(project)
    lines = toml.read_text().splitlines()
    assert err.value.line == next(n for n, line in enumerate(lines, 1) if needle in line)
    assert message in err.value.message


def test_the_default_limit(tmp_path: Path) -> None:
    loaded = load_project(write_project(tmp_path / "p", 2525))
    assert loaded.public_limit == PublicLimit(rate=20.0, burst=100)
