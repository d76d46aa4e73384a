"""Postmark's webhooks on a running server: its records (as Postmark documents them, in
payloads/) about messages the server sent, found by the metadata mailpulse set on each (or by
the returned message in a bounce's Content), become their lifecycle events; requests without
the configured credentials change nothing."""

from __future__ import annotations

import base64
import json
import time

from tests.feedback.builders import postfix_dsn
from tests.feedback.webhooks.conftest import (
    APPLE_PROXY,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    Hooks,
    iso,
    payload,
    postmark_auth,
)


async def entries(hooks: Hooks, reason: str) -> list[dict]:
    page = await hooks.server.admin.get("/admin/suppressions", params={"reason": reason})
    return page.json()["entries"]


async def test_bounces_are_judged_by_the_reply_and_found_by_metadata_or_content(
    hooks: Hooks,
) -> None:
    ana, bo, cy, di = [await hooks.sent(user) for user in ("ana", "bo", "cy", "di")]
    # The metadata Postmark echoes, set on the message handed over by SMTP.
    assert ana.headers["X-PM-Metadata-mailpulse-key"] == ana.key
    returned = postfix_dsn(
        f"Message-ID: {di.message_id}\r\nX-Mailpulse-Key: {di.key}\r\n\r\nHello\r\n".encode(),
        to="pm_bounces@pm-bounces.shop.test",
        recipient=di.email,
    )
    by_content = payload("postmark-bounce-hard.json", di)
    by_content.update(Metadata={}, Content=returned.decode(), ID=7)
    for record in (
        payload("postmark-bounce-hard.json", ana),
        payload("postmark-bounce-dmarc.json", bo),
        payload("postmark-bounce-autoresponder.json", cy),
        by_content,
    ):
        answer = await hooks.postmark(record)
        assert answer.status_code == 200, answer.text
    [hard] = await hooks.events("ana", "Email Bounced")
    props = hard["properties"]
    assert (props["bounce"], props["smtp_status"], props["esp_type"]) == (
        "hard",
        "5.1.1",
        "Bounce/HardBounce/1",
    )
    [dmarc] = await hooks.events("bo", "Email Bounced")
    assert (dmarc["properties"]["bounce"], dmarc["properties"]["smtp_status"]) == ("soft", "5.7.26")
    [found] = await hooks.events("di", "Email Bounced")
    assert found["properties"]["key"] == di.key and found["properties"]["bounce"] == "hard"
    assert "Email Bounced" not in {e["event"] for e in await hooks.server.events("cy")}
    assert sorted(e["address"] for e in await entries(hooks, "hard_bounce")) == [
        ana.email,
        di.email,
    ]
    assert hooks.counted("postmark", "not_acted") == 1


async def test_complaints_opens_clicks_and_subscription_changes(hooks: Hooks) -> None:
    ana, bo = [await hooks.sent(user) for user in ("ana", "bo")]
    later = payload("postmark-click.json", bo, clicked_at=iso(time.time() + 60))
    unsubscribed = payload("postmark-subscription-change.json", bo)
    for_a_bounce = {**unsubscribed, "SuppressionReason": "HardBounce"}
    reactivated = {**unsubscribed, "SuppressSending": False, "SuppressionReason": None}
    for record in (
        payload("postmark-spam-complaint.json", ana),
        payload("postmark-delivery.json", bo),
        payload("postmark-open.json", bo, user_agent=APPLE_PROXY),
        later,
        unsubscribed,
        for_a_bounce,
        reactivated,
    ):
        assert (await hooks.postmark(record)).status_code == 200
    [complained] = await hooks.events("ana", "Email Complained")
    assert (complained["properties"]["feedback_type"], complained["properties"]["source"]) == (
        "abuse",
        "postmark",
    )
    [opened] = await hooks.events("bo", "Email Opened")
    assert (opened["properties"]["machine"], opened["properties"]["ip"]) == (True, "188.2.95.4")
    [clicked] = await hooks.events("bo", "Email Clicked")
    assert (clicked["properties"]["machine"], clicked["properties"]["url"]) == (
        False,
        "https://shop.test/start",
    )
    [unsubscribe] = await hooks.events("bo", "Unsubscribed")
    assert unsubscribe["properties"]["source"] == "postmark"
    assert [e["address"] for e in await entries(hooks, "complaint")] == [ana.email]
    assert [e["address"] for e in await entries(hooks, "unsubscribe")] == [bo.email]
    assert hooks.counted("postmark", "not_acted") == 2
    assert hooks.counted("postmark", "delivered") == 1
    # Postmark sending the same record again adds nothing.
    again = await hooks.postmark(payload("postmark-spam-complaint.json", ana))
    assert again.json() == {"events": 1, "recorded": 0}


async def test_requests_without_the_credentials_change_nothing(hooks: Hooks) -> None:
    ana = await hooks.sent("ana")
    body = json.dumps(payload("postmark-bounce-hard.json", ana)).encode()
    garbled = "Basic " + base64.b64encode(b"no colon here").decode()
    for authorization in (
        None,
        postmark_auth(password=POSTMARK_PASSWORD + "x"),
        postmark_auth(user=POSTMARK_USER.upper()),
        postmark_auth(password=""),
        "Basic !!!",
        garbled,
        f"Bearer {POSTMARK_PASSWORD}",
    ):
        headers = {"Authorization": authorization} if authorization else {}
        answer = await hooks.post("postmark", body, headers)
        assert answer.status_code == 401, authorization
        assert answer.json()["where"] == "authorization"
        assert answer.headers["www-authenticate"].startswith("Basic")
    assert await entries(hooks, "hard_bounce") == []
    assert hooks.counted("postmark", "unauthorized", "requests") == 7
