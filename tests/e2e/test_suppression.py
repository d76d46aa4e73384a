"""Suppression end to end over real SMTP, in both deployments: recipients a campaign bounced
with 550 5.1.1 are on the list as hard bounces and the next campaign never reaches them (each
skipped with `Email Suppressed` naming the bounce), nor does a receipt; an unsubscribe stops
marketing and lets receipts through; an entry added over the admin API blocks the next send
at once, a retry already waiting included; a contacts import reports suppressed rows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project

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


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port, journeys=JOURNEYS)


async def people(server: Server, users: dict[str, str]) -> None:
    """userId → address, each with the traits the template shows."""
    calls = [
        {"type": "identify", "userId": u, "traits": {"email": a, "first_name": u, "plan": "pro"}}
        for u, a in users.items()
    ]
    assert (await server.send("batch", {"batch": calls})).status_code == 200
    async with asyncio.timeout(10):
        for user in users:
            while (await server.admin.get(f"/admin/contacts/{user}")).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


async def finished(server: Server, campaign_id: str, recipients: int) -> dict[str, int]:
    """A campaign's messages per state once every recipient's is final."""
    async with asyncio.timeout(20):
        while True:
            state = (await server.admin.get(f"/admin/campaigns/{campaign_id}")).json()
            messages = state["messages"]
            waiting = messages.get("queued", 0) + messages.get("deferred", 0)
            if state["status"] == "sent" and sum(messages.values()) == recipients and not waiting:
                return messages
            await asyncio.sleep(0.1)


async def hard_bounces(server: Server, count: int) -> list[dict]:
    async with asyncio.timeout(10):
        while True:
            page = await server.admin.get("/admin/suppressions", params={"reason": "hard_bounce"})
            if len(entries := page.json()["entries"]) >= count:
                return entries
            await asyncio.sleep(0.05)


async def message_of(server: Server, user: str, template_key: str) -> dict:
    """The contact's message whose key has `template_key` in it, once it is final."""
    async with asyncio.timeout(10):
        while True:
            rows = (await server.admin.get(f"/admin/contacts/{user}/messages")).json()["messages"]
            final = [m for m in rows if template_key in m["key"] and m["status"] != "queued"]
            if final and final[0]["status"] != "deferred":
                return final[0]
            await asyncio.sleep(0.05)


async def test_bounced_recipients_are_suppressed_for_the_next_campaign(
    server: Server, sink: Sink
) -> None:
    good = {f"ok-{n}": f"ok-{n}@example.com" for n in range(4)}
    bad = {f"gone-{n}": f"bounce.{n}@example.com" for n in range(3)}
    await people(server, {**good, **bad})
    body = {"id": "first", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201
    assert await finished(server, "first", 7) == {"sent": 4, "bounced": 3}
    entries = await hard_bounces(server, 3)
    assert sorted(e["address"] for e in entries) == sorted(bad.values())
    assert {e["detail"] for e in entries} == {"550 5.1.1 no such user"}

    body = {"id": "second", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201
    assert await finished(server, "second", 7) == {"sent": 4, "suppressed": 3}
    assert sorted(r.rcpt for r in sink.received) == sorted([*good.values(), *good.values()])
    assert len(sink.refused) == 3  # each bad address was tried once, by the first campaign
    skipped = await server.wait_event("gone-0", "Email Suppressed")
    assert skipped["properties"]["campaign"] == "second"
    assert skipped["properties"]["reason"].startswith(
        "suppressed: hard_bounce (550 5.1.1 no such user) since "
    )
    # Not even a receipt goes to an address that does not exist.
    await server.send("track", {"userId": "gone-1", "event": "Order Completed"})
    receipt = await message_of(server, "gone-1", "receipt")
    assert receipt["status"] == "suppressed" and "hard_bounce" in receipt["last_text"]
    assert len(sink.refused) == 3


async def test_an_unsubscribe_stops_marketing_and_lets_receipts_through(
    server: Server, sink: Sink
) -> None:
    await people(server, {"ana": "ana@example.com", "bo": "bo@example.com"})
    for body in (
        {"address": "ANA@example.com", "reason": "unsubscribe"},
        {"address": "bo@example.com", "reason": "unsubscribe", "topic": "offers"},
    ):
        assert (await server.admin.post("/admin/suppressions", json=body)).status_code == 201
    for user in ("ana", "bo"):
        await server.send("track", {"userId": user, "event": "Promo Started"})
        await server.send("track", {"userId": user, "event": "Order Completed"})
    await sink.wait_until(lambda: len(sink.received) >= 2)
    for user, scope in (("ana", "suppressed: unsubscribe"), ("bo", "for topic offers")):
        promo = await message_of(server, user, "promo")
        assert promo["status"] == "suppressed" and scope in promo["last_text"]
        assert (await message_of(server, user, "receipt"))["status"] == "sent"
    await asyncio.sleep(0.3)
    assert sorted(r.rcpt for r in sink.received) == ["ana@example.com", "bo@example.com"]


async def test_an_entry_added_over_the_api_blocks_the_next_send_at_once(
    server: Server, sink: Sink
) -> None:
    await people(server, {"cy": "cy@example.com", "di": "defer-1.di@example.com"})
    # di's first try is deferred (451); its retry waits in the outbox a second.
    await server.send("track", {"userId": "di", "event": "Promo Started"})
    async with asyncio.timeout(10):
        while not sink.refused:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    for address in ("cy@example.com", "defer-1.di@example.com"):
        r = await server.admin.post("/admin/suppressions", json={"address": address})
        assert r.status_code == 201
    await server.send("track", {"userId": "cy", "event": "Order Completed"})
    receipt = await message_of(server, "cy", "receipt")
    assert receipt["status"] == "suppressed" and "suppressed: manual" in receipt["last_text"]
    retried = await message_of(server, "di", "promo")
    assert retried["status"] == "suppressed" and retried["attempts"] == 1
    await asyncio.sleep(1.5)  # past the retry's time
    assert sink.received == []


async def test_a_contacts_import_reports_suppressed_rows(server: Server) -> None:
    await server.admin.post(
        "/admin/suppressions", json={"address": "ed@example.com", "reason": "complaint"}
    )
    rows = [{"id": "ed", "email": "Ed@Example.com"}, {"id": "fay", "email": "fay@example.com"}]
    r = await server.admin.post("/admin/contacts/import", json={"contacts": rows})
    report = r.json()
    assert report["imported"] == 2
    assert [(s["row"], s["kind"]) for s in report["suppressed"]] == [(1, "suppressed")]
    assert "complaint" in report["suppressed"][0]["reason"]
    async with asyncio.timeout(10):
        while (await server.admin.get("/admin/contacts/ed")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
