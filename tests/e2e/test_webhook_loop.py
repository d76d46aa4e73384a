"""The feedback loop through ESP webhooks, in both deployments: a campaign goes out over real
SMTP (the sink standing for the ESP's SMTP relay); the ESPs then report by webhook, signed as
each signs: SES a bounce of Ana's missing mailbox, Mailgun Bo's complaint, SendGrid a policy
block of Cy's message (which it calls a bounce), Postmark Di's hard bounce. The next campaign
skips Ana, Bo and Di with `Email Suppressed` and reaches Cy and Ed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, Server, Sink, running_server
from tests.e2e.test_bounce_loop import entries
from tests.e2e.test_suppression import finished, people
from tests.feedback.webhooks.conftest import (
    CERT_URL,
    Fetcher,
    Hooks,
    Sent,
    payload,
    sns_signer,
    webhook_project,
)


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return webhook_project(tmp_path / "project", sink)


@pytest.fixture
async def hooks(project_dir: Path, deployment: Deployment, sink: Sink) -> AsyncIterator[Hooks]:
    fetcher = Fetcher({CERT_URL: sns_signer().pem})
    async with running_server(project_dir, deployment, fetch=fetcher) as server:
        yield Hooks(server, sink, fetcher)


def sent_to(sink: Sink, user: str) -> Sent:
    email = f"{user}@example.com"
    [got] = sink.to(email)
    message = got.message
    headers = {name: str(value) for name, value in message.items()}
    return Sent(user, email, message["Message-ID"], message["X-Mailpulse-Key"], headers)


async def test_bounces_and_complaints_by_webhook_suppress_their_recipients(hooks: Hooks) -> None:
    server: Server = hooks.server
    users = {user: f"{user}@example.com" for user in ("ana", "bo", "cy", "di", "ed")}
    await people(server, users)
    body = {"id": "first", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201
    assert await finished(server, "first", 5) == {"sent": 5}
    ana, bo, cy, di = (sent_to(hooks.sink, user) for user in ("ana", "bo", "cy", "di"))

    answers = [
        await hooks.ses(payload("ses-bounce-permanent.json", ana)),
        await hooks.mailgun(payload("mailgun-complained.json", bo)),
        await hooks.sendgrid(payload("sendgrid-bounce-policy.json", cy)),
        await hooks.postmark(payload("postmark-bounce-hard.json", di)),
    ]
    assert [a.json() for a in answers] == [{"events": 1, "recorded": 1}] * 4

    hard = await entries(server, "hard_bounce", 2)
    assert sorted((e["address"], e["detail"]) for e in hard) == [
        (ana.email, "550 5.1.1 user unknown"),
        (di.email, "550 5.1.1 The email account that you tried to reach does not exist."),
    ]
    [complaint] = await entries(server, "complaint", 1)
    assert complaint["address"] == bo.email
    soft = await server.wait_event("cy", "Email Bounced")
    assert (soft["properties"]["bounce"], soft["properties"]["source"]) == ("soft", "sendgrid")
    complained = await server.wait_event("bo", "Email Complained")
    assert complained["properties"]["campaign"] == "first"

    body = {"id": "second", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201
    assert await finished(server, "second", 5) == {"sent": 2, "suppressed": 3}
    assert sorted(r.rcpt for r in hooks.sink.received[5:]) == [cy.email, users["ed"]]
    for user, reason in (
        ("ana", "suppressed: hard_bounce"),
        ("bo", "suppressed: complaint"),
        ("di", "suppressed: hard_bounce"),
    ):
        skipped = await server.wait_event(user, "Email Suppressed")
        assert skipped["properties"]["campaign"] == "second"
        assert skipped["properties"]["reason"].startswith(reason)
    metrics = (await server.client.get("/metrics")).text
    for provider, result in (
        ("ses", "hard_bounce"),
        ("mailgun", "complaint"),
        ("sendgrid", "soft_bounce"),
        ("postmark", "hard_bounce"),
    ):
        line = f'mailpulse_webhook_events_total{{provider="{provider}",result="{result}"}} 1.0'
        assert line in metrics
