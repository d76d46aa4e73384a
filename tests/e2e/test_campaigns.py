"""Campaigns end to end over the admin API and SMTP: a campaign to a segment reaches each
member with an address exactly once, and nobody else; scheduling, cancelling and bad
requests change what they say and nothing else."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project

SEGMENTS = {"pro": "conditions: {trait: plan, eq: pro}\n"}


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port, journeys={}, segments=SEGMENTS)


async def people(server: Server) -> list[str]:
    """20 pro with an address, 1 pro without, 10 free; the pro ones in the segment."""
    pro = [f"pro-{n}" for n in range(20)]
    calls = [
        {"type": "identify", "userId": u, "traits": {"plan": "pro", "email": f"{u}@example.com"}}
        for u in pro
    ]
    calls.append({"type": "identify", "userId": "pro-silent", "traits": {"plan": "pro"}})
    calls += [
        {
            "type": "identify",
            "userId": f"free-{n}",
            "traits": {"plan": "free", "email": f"f{n}@x.org"},
        }
        for n in range(10)
    ]
    assert (await server.send("batch", {"batch": calls})).status_code == 200
    async with asyncio.timeout(10):
        while (await server.admin.get("/admin/segments/pro")).json()["members"] < 21:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return pro


async def campaign(server: Server, campaign_id: str) -> dict:
    return (await server.admin.get(f"/admin/campaigns/{campaign_id}")).json()


async def test_a_campaign_reaches_each_member_once_and_nobody_else(
    server: Server, sink: Sink
) -> None:
    pro = await people(server)
    body = {"id": "launch", "template": "welcome", "audience": {"segment": "pro"}}
    r = await server.admin.post("/admin/campaigns", json=body)
    assert r.status_code == 201, r.text
    await sink.wait_until(lambda: len(sink.received) >= len(pro), within=20)
    async with asyncio.timeout(10):
        while (await campaign(server, "launch"))["messages"].get("sent", 0) < len(pro):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # anything more would have come by now
    assert sorted(r.rcpt for r in sink.received) == sorted(f"{u}@example.com" for u in pro)
    state = await campaign(server, "launch")
    assert (state["status"], state["queued"], state["messages"]) == ("sent", 20, {"sent": 20})
    # Counted from the lifecycle events, in every deployment (no metric is labelled by campaign:
    # its series would grow with every campaign ever sent).
    stats = {"by": "campaign", "key": "launch"}
    async with asyncio.timeout(10):
        while True:
            [row] = (await server.admin.get("/admin/stats", params=stats)).json()["rows"]
            if (row["queued"], row["sent"]) == (20, 20):
                break
            await asyncio.sleep(0.1)
    # Sent is final: it takes no more actions.
    again = await server.admin.post("/admin/campaigns/launch/resume")
    assert again.status_code == 409 and "is sent" in again.json()["error"]


# A scale-out API node counts only what it takes in; each worker serves its own /metrics.
@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
async def test_a_campaigns_messages_are_not_event_to_smtp_latency(
    server: Server, sink: Sink
) -> None:
    pro = await people(server)
    body = {"id": "quiet", "template": "welcome", "audience": {"segment": "pro"}}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201
    await sink.wait_until(lambda: len(sink.received) >= len(pro), within=20)
    async with asyncio.timeout(10):
        while (await campaign(server, "quiet"))["messages"].get("sent", 0) < len(pro):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    text = (await server.client.get("/metrics")).text
    assert 'mailpulse_emails_total{status="sent"} 20.0' in text
    # A backlog's wait is not a trigger's latency: it would fire the p99 alert all along.
    assert "mailpulse_event_to_smtp_seconds_count 0.0" in text


async def test_a_scheduled_campaign_waits_and_a_cancelled_one_never_goes(
    server: Server, sink: Sink
) -> None:
    await people(server)
    later = time.time() + 3600
    body = {"id": "later", "template": "welcome", "audience": "all", "send_at": later}
    created = (await server.admin.post("/admin/campaigns", json=body)).json()
    assert (created["status"], round(created["send_at"])) == ("scheduled", round(later))
    assert (await server.admin.post("/admin/campaigns/later/pause")).json()["status"] == "paused"
    assert (await server.admin.post("/admin/campaigns/later/cancel")).json()[
        "status"
    ] == "cancelled"
    assert (await server.admin.post("/admin/campaigns/later/resume")).status_code == 409
    await asyncio.sleep(1.0)
    assert sink.received == []
    listed = (await server.admin.get("/admin/campaigns")).json()
    assert [(c["id"], c["status"]) for c in listed] == [("later", "cancelled")]


async def test_bad_campaigns_are_refused_and_change_nothing(server: Server) -> None:
    cases = [
        ({"id": "x", "template": "welcom", "audience": "all"}, 404, "did you mean 'welcome'"),
        ({"id": "x", "template": "welcome", "audience": {"segment": "prro"}}, 404, "'pro'"),
        ({"id": "x y", "template": "welcome", "audience": "all"}, 400, None),
        ({"id": "x", "template": "welcome", "audience": "everyone"}, 400, None),
        ({"id": "x", "template": "welcome"}, 400, None),
    ]
    for body, status, reason in cases:
        r = await server.admin.post("/admin/campaigns", json=body)
        assert r.status_code == status, (body, r.text)
        if reason:
            assert reason in r.json()["error"]
    assert (await server.admin.get("/admin/campaigns")).json() == []
    ok = {"id": "dup", "template": "welcome", "audience": "all", "send_at": time.time() + 60}
    assert (await server.admin.post("/admin/campaigns", json=ok)).status_code == 201
    again = await server.admin.post("/admin/campaigns", json=ok)
    assert again.status_code == 409 and "exists" in again.json()["error"]
    assert (await server.admin.get("/admin/campaigns/nope")).status_code == 404
