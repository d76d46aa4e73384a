"""The protective breaker end to end, in both deployments, over real SMTP: a campaign's
marketing goes out; a provider's ARF complaint about one message, delivered to the inbound
listener, becomes its `Email Complained`, and the complaint rate (1 in 12, over a threshold of
0.3 % judged from 10 sends) trips the breaker. From then on a journey's marketing is held in
the outbox (an `Email Held` with reason breaker, nothing at the sink), a new campaign reads no
recipient and says why, and a receipt still arrives. An operator's resume (forced: the rate is
still over) lets the held messages go and the campaign read on: each arrives exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.api.test_breaker_api import sent_and_complained
from tests.e2e.conftest import (
    Deployment,
    Server,
    Sink,
    mailpulse_cli,
    running_server,
    write_project,
)
from tests.e2e.test_bounce_loop import deliver
from tests.e2e.test_suppression import finished, people
from tests.feedback.builders import arf_report

JOURNEYS = {
    "receipt": """\
        trigger: {event: Order Completed}
        entry: always
        message_class: transactional
        steps:
          - send: welcome
        """,
    "promo": """\
        trigger: {event: Promo Started}
        entry: always
        topic: offers
        steps:
          - send: welcome
        """,
}
PEOPLE = {f"p{n}": f"p{n}@example.com" for n in range(12)}
PROMOTED = ["p1", "p2", "p3"]


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    root = write_project(tmp_path / "project", sink.port, journeys=JOURNEYS)
    with (root / "mailpulse.toml").open("a") as toml:
        toml.write('\n[inbound]\nhost = "127.0.0.1"\nport = 0\n')
        toml.write("\n[breaker]\nmin_sends = 10\n")
    return root


async def breaker(server: Server) -> dict:
    r = await server.admin.get("/admin/breaker")
    assert r.status_code == 200, r.text
    return r.json()


async def messages(server: Server, user: str, key_part: str) -> list[dict]:
    rows = (await server.admin.get(f"/admin/contacts/{user}/messages")).json()["messages"]
    return [m for m in rows if key_part in m["key"]]


async def promo_when(server: Server, user: str, status: str, last_text: str | None = None) -> dict:
    """The contact's promo, once it stands so (held: deferred, last_text breaker)."""
    async with asyncio.timeout(10):
        while True:
            found = await messages(server, user, "promo")
            if (
                found
                and found[0]["status"] == status
                and last_text in (None, found[0]["last_text"])
            ):
                return found[0]
            await asyncio.sleep(0.05)


async def test_complaints_trip_the_breaker_and_a_resume_sends_what_it_held(
    server: Server, sink: Sink
) -> None:
    await people(server, PEOPLE)
    spring = {"id": "spring", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=spring)).status_code == 201
    assert await finished(server, "spring", 12) == {"sent": 12}
    assert len(sink.received) == 12

    # The provider's feedback loop reports p0's message as spam, at its return path.
    [to_p0] = sink.to(PEOPLE["p0"])
    assert server.pipeline.inbound is not None
    complaint = arf_report(to_p0.data, to=to_p0.mail_from, recipient=PEOPLE["p0"])
    await asyncio.to_thread(deliver, server.pipeline.inbound.port, to_p0.mail_from, complaint)
    async with asyncio.timeout(15):
        while not (now := await breaker(server))["tripped"]:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    assert (now["tripped_on"]["sends"], now["tripped_on"]["complaints"]) == (12, 1)
    assert now["reason"].startswith("the complaint rate reached 0.3%: 8.3333%: 1 complaint")
    async with asyncio.timeout(5):  # each node shows it once it has judged again
        while "mailpulse_breaker_tripped 1.0" not in (await server.client.get("/metrics")).text:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

    # Tripped: a journey's marketing waits in the outbox, a receipt goes, a campaign waits.
    for user in PROMOTED:
        await server.send("track", {"userId": user, "event": "Promo Started"})
    await server.send("track", {"userId": "p4", "event": "Order Completed"})
    summer = {"id": "summer", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=summer)).status_code == 201
    await sink.wait_until(lambda: len(sink.received) == 13)
    assert sink.received[-1].rcpt == PEOPLE["p4"]  # the receipt
    for user in PROMOTED:
        row = await promo_when(server, user, "deferred", "breaker")
        assert row["attempts"] == 0
        event = await server.wait_event(user, "Email Held")
        assert (event["properties"]["reason"], event["properties"]["key"]) == (
            "breaker",
            row["key"],
        )
    await asyncio.sleep(2.5)  # a campaign step or a retry sweep or two: nothing more goes
    assert len(sink.received) == 13
    waiting = (await server.admin.get("/admin/campaigns/summer")).json()
    assert waiting["queued"] == 0 and waiting["status"] in ("scheduled", "sending")
    assert waiting["held"].startswith("the protective breaker tripped at ")
    code, out, err = await mailpulse_cli(server, "campaign", "status", "summer")
    assert code == 0 and "held: the protective breaker tripped at " in out, err
    for user in PROMOTED:  # held once, however often the sweeps looked
        events = [e for e in await server.events(user) if e["event"] == "Email Held"]
        assert len(events) == 1

    # The operator resumes; the rate over the window is still over, so it must be forced.
    r = await server.admin.post("/admin/breaker/resume", json={})
    assert r.status_code == 409 and r.json()["where"] == "/force"
    r = await server.admin.post("/admin/breaker/resume", json={"force": True})
    assert r.status_code == 200, r.text
    assert r.json()["released"] == len(PROMOTED)
    # p0 complained: the summer campaign skips it.
    assert await finished(server, "summer", 12) == {"sent": 11, "suppressed": 1}
    await sink.wait_until(lambda: len(sink.received) == 13 + len(PROMOTED) + 11)
    for user in PROMOTED:
        assert (await promo_when(server, user, "sent"))["attempts"] == 1
        assert len(sink.to(PEOPLE[user])) == 3  # spring, the promo, summer
    assert sink.distinct_and_doubles() == (13 + len(PROMOTED) + 11, 0)
    assert not (await breaker(server))["tripped"]


async def test_sends_waiting_for_their_turn_are_held_when_it_comes(
    tmp_path: Path, sink: Sink
) -> None:
    """A destination sent to at one message a second: a campaign's messages wait for their
    turns, and those whose turn comes after the trip are held, not sent; after the resume
    each arrives once. (Embedded: how turns are kept does not change what the sender does
    when one comes.)"""
    root = write_project(tmp_path / "project", sink.port, journeys=JOURNEYS)
    with (root / "mailpulse.toml").open("a") as toml:
        toml.write('\n[[delivery.shaping]]\ndomain = "slow.example.com"\nrate = "1/s"\n')
        toml.write("\n[breaker]\nmin_sends = 10\n")
    slow = {f"s{n}": f"s{n}@slow.example.com" for n in range(10)}
    async with running_server(root, Deployment("embedded", tmp_path / "data")) as server:
        await people(server, slow)
        campaign = {"id": "slow", "template": "welcome", "audience": "all"}
        assert (await server.admin.post("/admin/campaigns", json=campaign)).status_code == 201
        await sink.wait_until(lambda: len(sink.received) >= 1)
        # Complaints about earlier marketing, appended as the feedback paths append them.
        await server.pipeline.append(sent_and_complained(20, 1, time.time()))
        async with asyncio.timeout(15):
            while not (await breaker(server))["tripped"]:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        async with asyncio.timeout(20):
            while True:
                rows = [m for u in slow for m in await messages(server, u, "campaign:slow")]
                if all(m["status"] == "sent" or m["last_text"] == "breaker" for m in rows):
                    break
                await asyncio.sleep(0.1)
        delivered = len(sink.received)
        assert 1 <= delivered < 10  # some went before the trip, the rest were held
        assert all(m["attempts"] == 0 for m in rows if m["status"] == "deferred")
        r = await server.admin.post("/admin/breaker/resume", json={"force": True})
        assert r.status_code == 200 and r.json()["released"] == 10 - delivered
        assert await finished(server, "slow", 10) == {"sent": 10}
        assert sorted(r.rcpt for r in sink.received) == sorted(slow.values())
        assert sink.distinct_and_doubles() == (10, 0)
