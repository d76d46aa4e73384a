"""The feedback loop end to end, in both deployments, over real SMTP: a campaign's message is
accepted by the recipient's server (the sink), which then returns a DSN built as Postfix
builds one to the message's own VERP return path, or the recipient's provider sends an ARF
complaint there; the test delivers it to mailpulse's inbound listener. The address is on the
suppression list, and the next campaign skips it with `Email Suppressed`. Soft bounces
suppress once [policy] soft_bounce_limit of them are counted (in the fold's store: SQLite or
PostgreSQL)."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project
from tests.e2e.test_suppression import finished, people
from tests.feedback.builders import arf_report, postfix_dsn


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    root = write_project(tmp_path / "project", sink.port)
    with (root / "mailpulse.toml").open("a") as toml:
        toml.write('\n[inbound]\nhost = "127.0.0.1"\nport = 0\n')
        toml.write('\n[policy]\nsoft_bounce_limit = "2/7d"\n')
    return root


def deliver(port: int, rcpt: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("", [rcpt], data)  # reports come from the null sender


async def entries(server: Server, reason: str, count: int) -> list[dict]:
    async with asyncio.timeout(10):
        while True:
            page = await server.admin.get("/admin/suppressions", params={"reason": reason})
            if len(found := page.json()["entries"]) >= count:
                return found
            await asyncio.sleep(0.05)


async def test_a_dsn_and_a_complaint_at_the_return_path_suppress_their_recipients(
    server: Server, sink: Sink
) -> None:
    users = {
        "ana": "ana@example.com",
        "bo": "bo@example.com",
        "cy": "cy@example.com",
        "di": "di@example.com",
    }
    await people(server, users)
    body = {"id": "first", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201
    assert await finished(server, "first", 4) == {"sent": 4}
    [to_ana] = sink.to("ana@example.com")
    [to_bo] = sink.to("bo@example.com")
    [to_di] = sink.to("di@example.com")
    # Each message went out from a return path of its own.
    assert to_ana.mail_from != to_bo.mail_from
    assert to_ana.mail_from.startswith("bounces-") and to_ana.mail_from.endswith("@shop.test")

    assert server.pipeline.inbound is not None
    port = server.pipeline.inbound.port
    dsn = postfix_dsn(to_ana.data, to=to_ana.mail_from, recipient="ana@example.com")
    complaint = arf_report(to_bo.data, to=to_bo.mail_from, recipient="bo@example.com")
    # A report at Ana's return path claiming Cy bounced: ignored.
    claim = postfix_dsn(to_ana.data, to=to_ana.mail_from, recipient="cy@example.com")
    # Two soft bounces of Di's: a full mailbox, then the same message expiring.
    full = postfix_dsn(
        to_di.data,
        to=to_di.mail_from,
        recipient="di@example.com",
        status="5.2.2",
        diagnostic="552 5.2.2 mailbox full",
    )
    expired = postfix_dsn(
        to_di.data,
        to=to_di.mail_from,
        recipient="di@example.com",
        status="4.4.7",
        diagnostic="delivery time expired",
    )
    for rcpt, data in (
        (to_ana.mail_from, claim),
        (to_ana.mail_from, dsn),
        (to_bo.mail_from, complaint),
        (to_di.mail_from, full),
        (to_di.mail_from, expired),
    ):
        await asyncio.to_thread(deliver, port, rcpt, data)

    [hard] = await entries(server, "hard_bounce", 1)
    assert (hard["address"], hard["detail"]) == (
        "ana@example.com",
        "550 5.1.1 <ana@example.com>: Recipient address rejected: User unknown in local "
        "recipient table",
    )
    [complained] = await entries(server, "complaint", 1)
    assert complained["address"] == "bo@example.com"
    assert complained["detail"] == "abuse report from ISP-FBL/2.0"
    bounced = await server.wait_event("ana", "Email Bounced")
    assert bounced["properties"]["bounce"] == "hard" and bounced["properties"]["source"] == "dsn"
    assert (await server.wait_event("bo", "Email Complained"))["properties"]["feedback_type"] == (
        "abuse"
    )
    [soft] = await entries(server, "soft_bounce", 1)
    assert soft["address"] == "di@example.com"
    assert soft["detail"] == "soft bounces reached 2/1w, the last: 4.4.7 delivery time expired"

    body = {"id": "second", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201
    assert await finished(server, "second", 4) == {"sent": 1, "suppressed": 3}
    assert [r.rcpt for r in sink.received[4:]] == ["cy@example.com"]
    for user, reason in (
        ("ana", "suppressed: hard_bounce"),
        ("bo", "suppressed: complaint"),
        ("di", "suppressed: soft_bounce"),
    ):
        skipped = await server.wait_event(user, "Email Suppressed")
        assert skipped["properties"]["campaign"] == "second"
        assert skipped["properties"]["reason"].startswith(reason)
    metrics = (await server.client.get("/metrics")).text
    for result, count in (
        ("hard_bounce", 1),
        ("complaint", 1),
        ("other_recipient", 1),
        ("soft_bounce", 2),
    ):
        assert f'mailpulse_inbound_messages_total{{result="{result}"}} {count}.0' in metrics
