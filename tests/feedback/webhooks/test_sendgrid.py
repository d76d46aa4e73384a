"""SendGrid's Signed Event Webhook on a running server: batches of events (as SendGrid
documents them, in payloads/) about messages the server sent, found by the custom argument
mailpulse set on each, become their lifecycle events one by one; unsigned, mis-signed, stale
and replayed requests change nothing."""

from __future__ import annotations

import json
import time

from cryptography.hazmat.primitives.asymmetric import ec

from tests.feedback.webhooks.conftest import Hooks, payload, sendgrid_headers


async def entries(hooks: Hooks, reason: str) -> list[dict]:
    page = await hooks.server.admin.get("/admin/suppressions", params={"reason": reason})
    return page.json()["entries"]


async def test_each_event_of_a_batch_is_read_on_its_own(hooks: Hooks) -> None:
    ana = await hooks.sent("ana")
    # The message carries the custom argument SendGrid echoes in every event.
    assert json.loads(ana.headers["X-SMTPAPI"]) == {"unique_args": {"mailpulse_key": ana.key}}
    batch = payload("sendgrid-events.json", ana)
    [click] = [e for e in batch if e["event"] == "click"]
    click["timestamp"] = int(time.time()) + 60  # read a minute after it was sent
    answer = await hooks.sendgrid(batch)
    assert answer.status_code == 200 and answer.json() == {"events": 8, "recorded": 4}
    [deferred] = await hooks.events("ana", "Email Deferred")
    assert (deferred["properties"]["bounce"], deferred["properties"]["smtp_code"]) == ("soft", 400)
    assert deferred["properties"]["esp_type"] == "deferred"
    opened = await hooks.events("ana", "Email Opened", 2)
    assert [(e["properties"]["machine"], e["properties"].get("rule")) for e in opened] == [
        (True, "esp-flag"),  # sg_machine_open: Apple's proxy
        (False, None),  # Gmail's image proxy fetches when a person opens
    ]
    [clicked] = await hooks.events("ana", "Email Clicked")
    assert (clicked["properties"]["machine"], clicked["properties"]["url"]) == (
        False,
        "https://shop.test/start",
    )
    for result, count in (
        ("deferred", 1),
        ("open", 2),
        ("click", 1),
        ("delivered", 1),
        ("not_acted", 2),  # processed, group_resubscribe
        ("unknown_event", 1),
    ):
        assert hooks.counted("sendgrid", result) == count, result
    # SendGrid retrying the batch adds nothing.
    assert (await hooks.sendgrid(batch)).json() == {"events": 8, "recorded": 0}
    assert hooks.counted("sendgrid", "duplicate") == 4


async def test_only_a_bounce_of_a_missing_address_suppresses_it(hooks: Hooks) -> None:
    users = {"ana": "sendgrid-bounce.json", "bo": "sendgrid-bounce-policy.json"}
    users |= {"cy": "sendgrid-blocked.json", "di": "sendgrid-dropped.json"}
    sent = {user: await hooks.sent(user) for user in users}
    for user, name in users.items():
        assert (await hooks.sendgrid(payload(name, sent[user]))).status_code == 200
    decided = {}
    for user in users:
        [bounced] = await hooks.events(user, "Email Bounced")
        decided[user] = (bounced["properties"]["bounce"], bounced["properties"]["esp_type"])
    assert decided == {
        "ana": ("hard", "bounce/bounce"),  # "500 unknown recipient"
        "bo": ("soft", "bounce/bounce"),  # 5.7.1: a policy block, whatever SendGrid calls it
        "cy": ("soft", "bounce/blocked"),  # blocked: temporary, says SendGrid
        "di": ("soft", "dropped"),  # SendGrid's own list: not the address's bounce
    }
    assert [e["address"] for e in await entries(hooks, "hard_bounce")] == [sent["ana"].email]


async def test_spam_reports_and_unsubscribes_reach_the_list(hooks: Hooks) -> None:
    ana, bo, cy = [await hooks.sent(user) for user in ("ana", "bo", "cy")]
    assert (await hooks.sendgrid(payload("sendgrid-spamreport.json", ana))).status_code == 200
    assert (await hooks.sendgrid(payload("sendgrid-unsubscribe.json", bo))).status_code == 200
    group = payload("sendgrid-group-unsubscribe.json", cy)
    assert (await hooks.sendgrid(group)).status_code == 200
    [complained] = await hooks.events("ana", "Email Complained")
    assert complained["properties"]["feedback_type"] == "abuse"
    [unsubscribed] = await hooks.events("bo", "Unsubscribed")
    assert (unsubscribed["properties"]["source"], unsubscribed["properties"]["key"]) == (
        "sendgrid",
        bo.key,
    )
    await hooks.events("cy", "Unsubscribed")
    assert [e["address"] for e in await entries(hooks, "complaint")] == [ana.email]
    assert sorted(e["address"] for e in await entries(hooks, "unsubscribe")) == [bo.email, cy.email]


async def test_unsigned_missigned_and_stale_requests_change_nothing(hooks: Hooks) -> None:
    ana = await hooks.sent("ana")
    body = json.dumps(payload("sendgrid-bounce.json", ana)).encode()
    other_key = ec.generate_private_key(ec.SECP256R1())
    signed = sendgrid_headers(body)
    cases = [
        ({"Content-Type": "application/json"}, body, "x-twilio-email-event-webhook-signature"),
        (sendgrid_headers(body, key=other_key), body, "x-twilio-email-event-webhook-signature"),
        (signed, body.replace(b"unknown", b"unknowm"), "x-twilio-email-event-webhook-signature"),
        (
            {**signed, "X-Twilio-Email-Event-Webhook-Signature": "not base64!"},
            body,
            "x-twilio-email-event-webhook-signature",
        ),
        (
            sendgrid_headers(body, at=time.time() - 600),
            body,
            "x-twilio-email-event-webhook-timestamp",
        ),
        (
            sendgrid_headers(body, at=time.time() + 600),
            body,
            "x-twilio-email-event-webhook-timestamp",
        ),
    ]
    for headers, sent_body, where in cases:
        answer = await hooks.post("sendgrid", sent_body, headers)
        assert (answer.status_code, answer.json()["where"]) == (401, where), headers
    not_a_batch = b'{"event": "bounce"}'
    answer = await hooks.post("sendgrid", not_a_batch, sendgrid_headers(not_a_batch))
    assert (answer.status_code, answer.json()["where"]) == (400, "body")
    assert await entries(hooks, "hard_bounce") == []
    assert hooks.counted("sendgrid", "unauthorized", "requests") == 4
    assert hooks.counted("sendgrid", "stale", "requests") == 2
    # The request replayed within the tolerance passes the signature; the log drops its event.
    assert (await hooks.post("sendgrid", body, signed)).json() == {"events": 1, "recorded": 1}
    assert (await hooks.post("sendgrid", body, signed)).json() == {"events": 1, "recorded": 0}
