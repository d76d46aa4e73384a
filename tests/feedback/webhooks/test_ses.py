"""Amazon SES through SNS on a running server: SES's events (as AWS documents them, in
payloads/) about a message the server sent become its lifecycle events; SNS signatures of
both versions verify with a certificate fetched once, through the app's seam, only from an
SNS address; forgeries, other topics, stale and replayed messages change nothing."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.feedback.webhooks.conftest import (
    APPLE_PROXY,
    CERT_URL,
    SAFARI,
    TOPIC,
    Hooks,
    SnsSigner,
    iso,
    payload,
    sns_signer,
)


async def entries(hooks: Hooks, reason: str) -> list[dict]:
    page = await hooks.server.admin.get("/admin/suppressions", params={"reason": reason})
    return page.json()["entries"]


def notification(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Message": json.dumps(event),
        "Timestamp": iso(time.time()),
        **fields,
    }


async def post_signed(hooks: Hooks, message: dict[str, Any], signer: SnsSigner | None = None):
    signed = (signer or sns_signer()).sign(message)
    return await hooks.post("ses", json.dumps(signed).encode())


async def test_a_bounce_of_a_missing_mailbox_is_hard_and_suppresses_once(hooks: Hooks) -> None:
    ana = await hooks.sent("ana")
    body = json.dumps(sns_signer().sign(notification(payload("ses-bounce-permanent.json", ana))))
    first = await hooks.post("ses", body.encode())
    assert first.status_code == 200 and first.json() == {"events": 1, "recorded": 1}
    # SNS retries with the very same message; SES publishing it again makes another
    # notification of the same bounce (the same feedbackId): neither adds an event.
    assert (await hooks.post("ses", body.encode())).json() == {"events": 1, "recorded": 0}
    assert (await hooks.ses(payload("ses-bounce-permanent.json", ana))).json()["recorded"] == 0
    [bounced] = await hooks.events("ana", "Email Bounced")
    props = bounced["properties"]
    assert (props["key"], props["recipient"], props["bounce"], props["category"]) == (
        ana.key,
        ana.email,
        "hard",
        "userunknown",
    )
    assert (props["smtp_code"], props["smtp_status"], props["smtp_text"]) == (
        550,
        "5.1.1",
        "user unknown",
    )
    assert (props["source"], props["esp_type"]) == ("ses", "Permanent/General")
    [hard] = await entries(hooks, "hard_bounce")
    assert (hard["address"], hard["detail"]) == (ana.email, "550 5.1.1 user unknown")
    assert hooks.counted("ses", "hard_bounce") == 1
    assert hooks.counted("ses", "duplicate") == 2


async def test_a_policy_block_ses_calls_permanent_is_a_soft_bounce(hooks: Hooks) -> None:
    """SES labels a 5.7.1 refusal Permanent; the address is fine, so it is not suppressed."""
    bo = await hooks.sent("bo")
    assert (await hooks.ses(payload("ses-bounce-policy.json", bo))).status_code == 200
    [bounced] = await hooks.events("bo", "Email Bounced")
    props = bounced["properties"]
    assert (props["bounce"], props["smtp_status"], props["esp_type"]) == (
        "soft",
        "5.7.1",
        "Permanent/General",
    )
    assert props["category"] != "userunknown"
    assert await entries(hooks, "hard_bounce") == []
    assert hooks.counted("ses", "soft_bounce") == 1


async def test_both_signature_versions_and_both_event_forms_are_read(hooks: Hooks) -> None:
    cy = await hooks.sent("cy")
    # Identity notifications (notificationType), signed with SHA1withRSA.
    full = payload("ses-notification-bounce.json", cy)
    assert (await hooks.ses(full, SignatureVersion="1")).status_code == 200
    [bounced] = await hooks.events("cy", "Email Bounced")
    assert (bounced["properties"]["bounce"], bounced["properties"]["category"]) == (
        "soft",
        "mailboxfull",
    )
    # SES still trying: a deferral.
    assert (await hooks.ses(payload("ses-delivery-delay.json", cy))).status_code == 200
    [deferred] = await hooks.events("cy", "Email Deferred")
    props = deferred["properties"]
    assert (props["bounce"], props["smtp_status"], props["smtp_code"]) == ("soft", "4.4.1", 421)
    assert props["esp_type"] == "DeliveryDelay/TransientCommunicationFailure"
    # A delivery makes no event (the message was Email Sent when SES took it): counted.
    delivered = await hooks.ses(payload("ses-delivery.json", cy), SignatureVersion="2")
    assert delivered.json() == {"events": 1, "recorded": 0}
    assert hooks.counted("ses", "delivered") == 1
    # The certificate was fetched once for all of them.
    assert hooks.fetcher.asked == [CERT_URL]


async def test_a_complaint_is_the_messages_and_puts_it_on_the_list(hooks: Hooks) -> None:
    di = await hooks.sent("di")
    assert (await hooks.ses(payload("ses-complaint.json", di))).status_code == 200
    [complained] = await hooks.events("di", "Email Complained")
    props = complained["properties"]
    assert (props["feedback_type"], props["source"], props["recipient"]) == (
        "abuse",
        "ses",
        di.email,
    )
    assert props["user_agent"].startswith("Mozilla/5.0 (Windows NT 10.0")
    [entry] = await entries(hooks, "complaint")
    assert entry["address"] == di.email


async def test_opens_and_clicks_are_flagged_as_a_machines_or_a_persons(hooks: Hooks) -> None:
    ed = await hooks.sent("ed")
    sent_at = time.time()
    for agent in (APPLE_PROXY, SAFARI):
        assert (await hooks.ses(payload("ses-open.json", ed, user_agent=agent))).status_code == 200
    # A click at once is a gateway scanning the links; a click a minute on, a person's.
    for at in (sent_at, sent_at + 60):
        click = payload("ses-click.json", ed, clicked_at=iso(at))
        assert (await hooks.ses(click)).status_code == 200
    opened = await hooks.events("ed", "Email Opened", 2)
    assert [(e["properties"]["machine"], e["properties"].get("rule")) for e in opened] == [
        (True, "apple-proxy-agent"),
        (False, None),
    ]
    assert opened[1]["properties"]["ip"] == "192.0.2.1"
    clicked = await hooks.events("ed", "Email Clicked", 2)
    assert [(e["properties"]["machine"], e["properties"].get("rule")) for e in clicked] == [
        (True, "too-soon"),
        (False, None),
    ]
    assert clicked[1]["properties"]["url"] == "https://shop.test/start"
    assert clicked[1]["properties"]["journey"] == "welcome"


FORGED_CERTIFICATE_URLS = (
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.test/SimpleNotificationService-x.pem",
    "https://evil.test/sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com@evil.test/x.pem",
    "https://evil.test\\@sns.us-east-1.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.txt",
    "https://s3.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/x.pem\r\nHost: evil.test",
)


async def test_a_certificate_not_at_an_sns_address_is_refused_unfetched(hooks: Hooks) -> None:
    """The classic forgery: a message signed with the forger's own key, naming the forger's
    certificate. Whatever serves it, it is not fetched."""
    ana = await hooks.sent("ana")
    forger = SnsSigner.make()
    for url in FORGED_CERTIFICATE_URLS:
        hooks.fetcher.certificates[url] = forger.pem
        message = notification(payload("ses-bounce-permanent.json", ana), SigningCertURL=url)
        answer = await post_signed(hooks, message, forger)
        assert (answer.status_code, answer.json()["where"]) == (400, "SigningCertURL"), url
    assert hooks.fetcher.asked == []
    told = {e["event"] for e in await hooks.server.events("ana")}
    assert "Email Bounced" not in told
    assert hooks.counted("ses", "forged_certificate", "requests") == len(FORGED_CERTIFICATE_URLS)


async def test_bad_signatures_stale_messages_and_other_topics_are_refused(hooks: Hooks) -> None:
    ana = await hooks.sent("ana")
    event = payload("ses-bounce-permanent.json", ana)
    tampered = sns_signer().sign(notification(event))
    tampered["Message"] = tampered["Message"].replace("user unknown", "user unknowm")
    forger = SnsSigner.make()  # a key of its own, pretending to be SNS's at CERT_URL
    expired = SnsSigner.make(valid_days=(-30, -1))
    old_url = CERT_URL.replace("0123456789abcdef", "expired")
    hooks.fetcher.certificates[old_url] = expired.pem
    cases = [
        (tampered, 401, "Signature"),
        (forger.sign(notification(event)), 401, "Signature"),
        (expired.sign(notification(event, SigningCertURL=old_url)), 401, "SigningCertURL"),
        (
            {**sns_signer().sign(notification(event)), "SignatureVersion": "3"},
            400,
            "SignatureVersion",
        ),
        (
            sns_signer().sign(notification(event, Timestamp=iso(time.time() - 3 * 86400))),
            401,
            "Timestamp",
        ),
        (
            sns_signer().sign(notification(event, TopicArn=TOPIC.replace("mailpulse", "other"))),
            403,
            "TopicArn",
        ),
        ({"Type": "Notification", "Message": "{}"}, 400, "body"),
    ]
    for body, status, where in cases:
        answer = await hooks.post("ses", json.dumps(body).encode())
        assert (answer.status_code, answer.json()["where"]) == (status, where), body
    assert [e["event"] for e in await hooks.server.events("ana")].count("Email Bounced") == 0
    assert await entries(hooks, "hard_bounce") == []


async def test_a_subscription_is_confirmed_only_for_a_configured_topic(hooks: Hooks) -> None:
    def confirmation(topic: str, subscribe_url: str) -> dict[str, Any]:
        return {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a",
            "TopicArn": topic,
            "Message": f"You have chosen to subscribe to the topic {topic}.\nTo confirm the "
            "subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": subscribe_url,
            "Timestamp": iso(time.time()),
        }

    confirm = f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}"
    answer = await post_signed(hooks, confirmation(TOPIC, confirm))
    assert answer.status_code == 200
    assert answer.json()["note"] == f"subscription to {TOPIC} confirmed"
    other = TOPIC.replace("mailpulse", "someone-else")
    refused = await post_signed(hooks, confirmation(other, confirm.replace(TOPIC, other)))
    assert refused.status_code == 403
    forged = await post_signed(
        hooks, confirmation(TOPIC, "https://evil.test/?Action=ConfirmSubscription")
    )
    assert (forged.status_code, forged.json()["where"]) == (400, "SubscribeURL")
    assert hooks.fetcher.asked == [CERT_URL, confirm]


async def test_events_about_nothing_we_sent_or_not_ours_to_read_are_ignored(hooks: Hooks) -> None:
    ana = await hooks.sent("ana")
    stranger = payload(
        "ses-bounce-permanent.json",
        message_id="<0123456789abcdef0123456789abcdef@shop.test>",
        key="campaign:none:user:nobody",
        recipient="nobody@example.com",
    )
    someone_else = payload("ses-complaint.json", ana)
    someone_else["complaint"]["complainedRecipients"] = [{"emailAddress": "cy@example.com"}]
    rendering = {**payload("ses-delivery.json", ana), "eventType": "Rendering Failure"}
    suppressed = payload("ses-complaint.json", ana)
    suppressed["complaint"]["complaintSubType"] = "OnAccountSuppressionList"
    for event in (stranger, someone_else, rendering, suppressed):
        assert (await hooks.ses(event)).json()["recorded"] == 0
    not_ses = await post_signed(hooks, {**notification({}), "Message": "hello, SNS"})
    assert not_ses.json() == {"events": 1, "recorded": 0}
    for result in ("unknown_send", "other_recipient", "unknown_event", "not_acted", "malformed"):
        assert hooks.counted("ses", result) == 1, result
    told = {e["event"] for e in await hooks.server.events("ana")}
    assert told.isdisjoint({"Email Bounced", "Email Complained"})
