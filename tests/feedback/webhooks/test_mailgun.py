"""Mailgun's webhooks on a running server: its events (as Mailgun documents them, in
payloads/) about messages the server sent, found by their Message-ID, become their lifecycle
events; wrong keys, stale timestamps and tokens seen before change nothing."""

from __future__ import annotations

import json
import time

import pytest

from mailpulse.store import LogUnavailable
from tests.feedback.webhooks.conftest import (
    APPLE_PROXY,
    SAFARI,
    Hooks,
    mailgun_signed,
    payload,
)


async def entries(hooks: Hooks, reason: str) -> list[dict]:
    page = await hooks.server.admin.get("/admin/suppressions", params={"reason": reason})
    return page.json()["entries"]


async def test_failures_are_judged_by_the_servers_words(hooks: Hooks) -> None:
    ana, bo, cy = [await hooks.sent(user) for user in ("ana", "bo", "cy")]
    for sent, name in (
        (ana, "mailgun-failed-permanent.json"),
        (bo, "mailgun-failed-policy.json"),
        (cy, "mailgun-failed-temporary.json"),
    ):
        assert (await hooks.mailgun(payload(name, sent))).status_code == 200
    [hard] = await hooks.events("ana", "Email Bounced")
    assert (hard["properties"]["bounce"], hard["properties"]["smtp_code"]) == ("hard", 550)
    assert hard["properties"]["smtp_status"] == "5.1.1"
    assert hard["properties"]["remote_mta"] == "aspmx.l.example.com"
    assert hard["properties"]["esp_type"] == "failed/permanent/bounce"
    [policy] = await hooks.events("bo", "Email Bounced")
    assert (policy["properties"]["bounce"], policy["properties"]["smtp_status"]) == (
        "soft",
        "5.7.1",
    )
    [greylisted] = await hooks.events("cy", "Email Deferred")
    assert (greylisted["properties"]["bounce"], greylisted["properties"]["smtp_code"]) == (
        "soft",
        450,
    )
    assert [e["address"] for e in await entries(hooks, "hard_bounce")] == [ana.email]
    for result in ("hard_bounce", "soft_bounce", "deferred"):
        assert hooks.counted("mailgun", result) == 1, result


async def test_complaints_unsubscribes_opens_clicks_and_deliveries(hooks: Hooks) -> None:
    ana, bo, cy = [await hooks.sent(user) for user in ("ana", "bo", "cy")]
    # The message keeps the Message-ID mailpulse gave it; Mailgun echoes it without brackets.
    assert payload("mailgun-delivered.json", ana)["event-data"]["message"]["headers"][
        "message-id"
    ] == ana.message_id.strip("<>")
    opened = [
        payload("mailgun-opened.json", cy, user_agent=agent) for agent in (APPLE_PROXY, SAFARI)
    ]
    opened[1]["event-data"]["id"] = "Ase7i2zsRYeDXztHGENqRX"
    clicked = payload("mailgun-clicked.json", cy)
    clicked["event-data"]["timestamp"] = time.time() + 60
    for body in (
        payload("mailgun-complained.json", ana),
        payload("mailgun-unsubscribed.json", bo),
        payload("mailgun-delivered.json", cy),
        *opened,
        clicked,
    ):
        assert (await hooks.mailgun(body)).status_code == 200
    [complained] = await hooks.events("ana", "Email Complained")
    assert (complained["properties"]["feedback_type"], complained["properties"]["source"]) == (
        "abuse",
        "mailgun",
    )
    [unsubscribed] = await hooks.events("bo", "Unsubscribed")
    assert unsubscribed["properties"]["source"] == "mailgun"
    opens = await hooks.events("cy", "Email Opened", 2)
    assert [e["properties"]["machine"] for e in opens] == [True, False]
    [click] = await hooks.events("cy", "Email Clicked")
    assert (click["properties"]["machine"], click["properties"]["ip"]) == (False, "198.51.100.7")
    assert [e["address"] for e in await entries(hooks, "complaint")] == [ana.email]
    assert [e["address"] for e in await entries(hooks, "unsubscribe")] == [bo.email]
    assert hooks.counted("mailgun", "delivered") == 1


async def test_wrong_keys_stale_timestamps_and_seen_tokens_are_refused(hooks: Hooks) -> None:
    ana = await hooks.sent("ana")
    event = payload("mailgun-failed-permanent.json", ana)
    cases = [
        (mailgun_signed(event, key="key-of-someone-else"), 401, "signature.signature"),
        (mailgun_signed(event, at=time.time() - 600), 401, "signature.timestamp"),
        ({**mailgun_signed(event), "signature": {"token": "t"}}, 401, "signature"),
        ({"event-data": event["event-data"]}, 401, "signature"),
        ([1, 2, 3], 400, "body"),
    ]
    tampered = mailgun_signed(event)
    tampered["signature"]["timestamp"] = str(int(tampered["signature"]["timestamp"]) - 1)
    cases.append((tampered, 401, "signature.signature"))
    for body, status, where in cases:
        answer = await hooks.post("mailgun", json.dumps(body).encode())
        assert (answer.status_code, answer.json()["where"]) == (status, where), body
    assert await entries(hooks, "hard_bounce") == []
    # Taken once; the same signed request again is a replay Mailgun does not retry (406).
    signed = json.dumps(mailgun_signed(event)).encode()
    assert (await hooks.post("mailgun", signed)).json() == {"events": 1, "recorded": 1}
    replayed = await hooks.post("mailgun", signed)
    assert (replayed.status_code, replayed.json()["where"]) == (406, "signature.token")
    # A new signature over the same event (Mailgun's own retry): taken, and dropped by the log.
    assert (await hooks.mailgun(event)).json() == {"events": 1, "recorded": 0}
    assert hooks.counted("mailgun", "replayed", "requests") == 1
    assert len(await hooks.events("ana", "Email Bounced")) == 1


async def test_a_request_the_log_could_not_take_is_taken_when_mailgun_retries(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    ana = await hooks.sent("ana")
    signed = json.dumps(mailgun_signed(payload("mailgun-complained.json", ana))).encode()
    ingest = hooks.server.pipeline._ingest

    async def down(events: object) -> list:
        raise LogUnavailable("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(ingest, "append", down)
        failed = await hooks.post("mailgun", signed)
    assert (failed.status_code, failed.json()["error"]) == (503, "not recorded; try again")
    # Its token was not remembered: the same request, retried, is taken.
    assert (await hooks.post("mailgun", signed)).json() == {"events": 1, "recorded": 1}
    await hooks.events("ana", "Email Complained")
    assert hooks.counted("mailgun", "unavailable", "requests") == 1
