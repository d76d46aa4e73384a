"""A campaign's own From: on the wire, signed as every message is; one that DMARC would
refuse (not aligned with the DKIM domain) is refused and nothing is created."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dkim

from mailpulse.delivery.mime import key_digest
from mailpulse.feedback.verp import ReturnPath
from tests.e2e.conftest import Server, Sink, dkim_dns


async def test_a_campaign_goes_from_its_own_sender(
    server: Server, sink: Sink, project_dir: Path
) -> None:
    r = await server.send("identify", {"userId": "ann", "traits": {"email": "ann@example.com"}})
    assert r.status_code == 200
    async with asyncio.timeout(10):
        while (await server.admin.get("/admin/contacts/ann")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    body = {
        "id": "news",
        "template": "welcome",
        "audience": "all",
        "sender": "Testshop News <news@news.shop.test>",
    }
    r = await server.admin.post("/admin/campaigns", json=body)
    assert r.status_code == 201 and r.json()["sender"] == body["sender"], r.text
    [got] = await sink.wait_for("ann@example.com")
    assert got.message["From"] == "Testshop News <news@news.shop.test>"
    # Bounces still come back to the project's return path, named for the send (VERP).
    verp = ReturnPath(server.pipeline.tokens, "bounces@shop.test")
    assert verp.digest_in(got.mail_from) == key_digest(got.message["X-Mailpulse-Key"])
    assert dkim.verify(got.data, dnsfunc=dkim_dns(project_dir))


async def test_a_sender_dmarc_would_refuse_is_refused(server: Server) -> None:
    body = {"id": "spoof", "template": "welcome", "audience": "all", "sender": "a@bank.test"}
    r = await server.admin.post("/admin/campaigns", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["where"] == "/sender"
    assert "not aligned with the DKIM signing domain shop.test" in r.json()["error"]
    assert (await server.admin.get("/admin/campaigns/spoof")).status_code == 404
