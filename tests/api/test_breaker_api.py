"""The protective breaker over the admin API and the command line, on a real embedded server:
where it stands, a resume refused with its reason (not tripped; still over without force; a
body of the wrong shape; a key of scope read), a forced resume with who made it, on record in
the audit log; `mailpulse breaker status|resume` on top."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.types import Event, MessageClass, SendIntent
from tests.e2e.conftest import (
    Deployment,
    Server,
    Sink,
    mailpulse_cli,
    running_server,
    write_project,
)

MIN_SENDS = 10


def marketing(n: int, campaign: str = "spring") -> SendIntent:
    return SendIntent(
        key=f"campaign:{campaign}:c{n}",
        contact_id=f"c{n}",
        email=f"c{n}@shop.test",
        template="welcome",
        context={},
        message_class=MessageClass.MARKETING,
        campaign=campaign,
    )


def sent_and_complained(count: int, complaints: int, now: float) -> list[Event]:
    """What the sender and the feedback path append about `count` marketing messages of which
    `complaints` drew a complaint (until the ARF path lands, appended here the way it does:
    lifecycle events through pipeline.append)."""
    intents = [marketing(n) for n in range(count)]
    events = [lifecycle_event(Lifecycle.SENT, i, now) for i in intents]
    events += [
        lifecycle_event(Lifecycle.COMPLAINED, i, now, feedback_type="abuse")
        for i in intents[:complaints]
    ]
    return events


async def standing(server: Server) -> dict:
    r = await server.admin.get("/admin/breaker")
    assert r.status_code == 200, r.text
    return r.json()


async def until_tripped(server: Server, within: float = 15.0) -> dict:
    async with asyncio.timeout(within):
        while not (now := await standing(server))["tripped"]:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return now


@contextlib.asynccontextmanager
async def breaker_server(tmp_path: Path, min_sends: int = MIN_SENDS) -> AsyncIterator[Server]:
    """The default project, judged from `min_sends` sends, embedded, with a sink."""
    sink = Sink()
    await sink.start()
    project = write_project(tmp_path / "project", sink.port)
    with (project / "mailpulse.toml").open("a") as toml:
        toml.write(f"\n[breaker]\nmin_sends = {min_sends}\n")
    try:
        async with running_server(project, Deployment("embedded", tmp_path / "data")) as s:
            yield s
    finally:
        await sink.stop()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with breaker_server(tmp_path) as s:
        yield s


async def test_a_fresh_breaker_stands_clear(server: Server) -> None:
    now = await standing(server)
    assert (now["state"], now["tripped"], now["reason"], now["alert_since"]) == (
        "clear",
        False,
        None,
        None,
    )
    assert now["thresholds"] == {
        "alert": "0.1%",
        "pause": "0.3%",
        "window": 86400.0,
        "min_sends": MIN_SENDS,
    }
    assert (now["figures"]["sends"], now["figures"]["judged"]) == (0, "unjudged")
    r = await server.admin.post("/admin/breaker/resume")
    assert r.status_code == 409
    assert r.json() == {
        "error": "the breaker is not tripped: marketing is going out",
        "where": None,
    }


async def test_a_tripped_breaker_resumes_when_forced_and_says_who(server: Server) -> None:
    await server.pipeline.append(sent_and_complained(20, 2, time.time()))
    now = await until_tripped(server)
    assert now["state"] == "tripped" and now["tripped_on"]["complaints"] == 2
    assert now["reason"].startswith("the complaint rate reached 0.3%: 10%: 2 complaints about 20")
    assert now["held_reason"].startswith("the protective breaker tripped at ")
    assert now["alert_since"] is not None  # the alert came with it

    r = await server.admin.post("/admin/breaker/resume", json={})
    assert r.status_code == 409 and r.json()["where"] == "/force"
    assert "still at the pause threshold (0.3%): 10%" in r.json()["error"]
    for bad, where in (({"force": "perhaps"}, "body.force"), ({"forse": True}, "body.forse")):
        r = await server.admin.post("/admin/breaker/resume", json=bad)
        assert r.status_code == 400 and r.json()["where"] == where
    r = await server.admin.post("/admin/keys", json={"scope": "read"})
    reader = {"Authorization": f"Bearer {r.json()['key']}"}
    async with httpx.AsyncClient(base_url=server.base, headers=reader) as c:
        assert (await c.get("/admin/breaker")).status_code == 200
        r = await c.post("/admin/breaker/resume", json={"force": True})
        assert r.status_code == 403 and "needs scope admin" in r.json()["error"]
    assert (await standing(server))["tripped"]

    r = await server.admin.post("/admin/breaker/resume", json={"force": True})
    assert r.status_code == 200, r.text
    resumed = r.json()
    assert (resumed["released"], resumed["tripped"], resumed["resumed_by"]) == (
        0,
        False,
        "project admin key",
    )
    # Judged afresh: what it tripped on is behind the resume.
    assert (resumed["figures"]["sends"], resumed["figures"]["judged"]) == (0, "unjudged")
    entries = (await server.admin.get("/admin/audit")).json()["entries"]
    kept = [e for e in entries if e["path"] == "/admin/breaker/resume" and e["status"] == 200]
    assert "resumed the protective breaker (forced): 0 held messages let go" in str(kept)
    assert (await server.admin.post("/admin/breaker/resume", json={"force": True})).status_code == (
        409
    )


async def test_status_and_resume_from_the_command_line(server: Server) -> None:
    code, out, err = await mailpulse_cli(server, "breaker", "status")
    assert code == 0, err
    assert "not tripped: marketing goes out" in out
    assert "thresholds: alert 0.1%, pause 0.3%, over 1d, from 10 sends" in out
    code, out, err = await mailpulse_cli(server, "breaker", "resume")
    assert code == 1 and "the breaker is not tripped" in err
    await server.pipeline.append(sent_and_complained(10, 1, time.time()))
    await until_tripped(server)
    code, out, err = await mailpulse_cli(server, "breaker", "status", "--json")
    assert code == 0 and json.loads(out)["tripped"] is True
    code, out, err = await mailpulse_cli(server, "breaker", "status")
    assert "tripped at " in out and "now: 10% (1 complaint about 10 marketing messages" in out
    code, out, err = await mailpulse_cli(server, "breaker", "resume")
    assert code == 1 and "still at the pause threshold" in err and "(at /force)" in err
    code, out, err = await mailpulse_cli(server, "breaker", "resume", "--force")
    assert code == 0, err
    assert "resumed: 0 held messages go out" in out
    code, out, err = await mailpulse_cli(server, "breaker", "status")
    assert "last resumed: " in out and "by project admin key" in out
