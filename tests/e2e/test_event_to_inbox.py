"""identify + track over HTTP → the right email at a real SMTP server, and its lifecycle."""

from __future__ import annotations

import asyncio
import re
from email.utils import parsedate_to_datetime
from pathlib import Path

import dkim
import pytest

from mailpulse.delivery import make_message_id
from mailpulse.delivery.mime import key_digest
from mailpulse.feedback.verp import ReturnPath
from mailpulse.render.tracking import read_click
from tests.e2e.conftest import Server, Sink, dkim_dns


async def sign_up(server: Server, user: str, email: str, **traits: object) -> None:
    r = await server.send(
        "identify",
        {"userId": user, "traits": {"email": email, "first_name": "Zoë", **traits}},
    )
    assert r.status_code == 200, r.text
    r = await server.send("track", {"userId": user, "event": "Signed Up"})
    assert r.status_code == 200, r.text


async def test_identify_then_track_sends_a_personalized_signed_email(
    server: Server, sink: Sink, project_dir: Path
) -> None:
    await sign_up(server, "u-1", "Zoe@Example.COM", plan="pro")
    [got] = await sink.wait_for("Zoe@example.com")
    msg = got.message

    assert msg["Subject"] == "Welcome, Zoë — Grüße from Testshop"
    assert b"=?utf-8?" in got.data.split(b"\r\n\r\n")[0].lower()  # RFC 2047 on the wire
    assert msg["From"] == "Testshop <hello@shop.test>"
    assert msg["To"] == "Zoe@example.com"
    # Its return path names the send (VERP): bounces come back to the project, about it.
    verp = ReturnPath(server.pipeline.tokens, "bounces@shop.test")
    assert verp.digest_in(got.mail_from) == key_digest(msg["X-Mailpulse-Key"])
    assert parsedate_to_datetime(msg["Date"]) is not None
    assert msg["Message-ID"] == make_message_id(msg["X-Mailpulse-Key"], "shop.test")
    assert msg["Feedback-ID"] == "t:welcome:mp:testshop"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Hello Zoë, your plan is pro." in text
    assert "Hello Zoë, your plan is pro." in html
    # Marketing mail is tracked: the button's link leads there through its click token.
    [token] = re.findall(r'href="https://shop\.test/c/([^"]+)"', html)
    assert read_click(server.pipeline.tokens, token).url == "https://shop.test/start?u=u-1"
    assert "1 Test Street, Testville" in text
    assert dkim.verify(got.data, dnsfunc=dkim_dns(project_dir))
    signed = msg["DKIM-Signature"]
    assert "c=relaxed/relaxed" in signed.replace(" ", "")
    assert "a=rsa-sha256" in signed.replace(" ", "")

    sent = await server.wait_event("u-1", "Email Sent")
    assert sent["properties"]["message_id"] == msg["Message-ID"]
    assert sent["properties"]["smtp_code"] == 250
    names = [e["event"] or e["type"] for e in await server.events("u-1")]
    assert names[:2] == ["identify", "Signed Up"]
    assert "Email Queued" in names and names.index("Email Queued") < names.index("Email Sent")


async def test_repeated_message_id_has_no_second_effect(server: Server, sink: Sink) -> None:
    await server.send("identify", {"userId": "u-3", "traits": {"email": "three@example.com"}})
    body = {"userId": "u-3", "event": "Signed Up", "messageId": "dup-1"}
    for _ in range(3):
        assert (await server.send("track", body)).status_code == 200
    await sink.wait_for("three@example.com")
    await asyncio.sleep(0.5)
    assert len(sink.to("three@example.com")) == 1
    tracks = [e for e in await server.events("u-3") if e["event"] == "Signed Up"]
    assert len(tracks) == 1


async def test_anonymous_history_moves_to_the_identified_contact(
    server: Server, sink: Sink
) -> None:
    # Scale-out runs 4 partitions: the device falls in another one than the user, so the
    # merge crosses partitions.
    anon = "device-4"
    r = await server.send(
        "track",
        {"anonymousId": anon, "event": "Product Viewed", "properties": {"name": "Boots"}},
    )
    assert r.status_code == 200
    await server.send(
        "identify",
        {"userId": "u-4", "anonymousId": anon, "traits": {"email": "four@example.com"}},
    )
    # Still anonymous on that device: the event is the identified contact's all the same.
    await server.send("track", {"anonymousId": anon, "event": "Signed Up"})
    await sink.wait_for("four@example.com")
    await server.wait_event("u-4", "Product Viewed")
    contact = (await server.admin.get(f"/admin/contacts/{anon}")).json()
    assert contact["id"] == "u-4"
    assert sorted(contact["identities"]) == sorted([anon, "u-4"])
    history = [e["event"] or e["type"] for e in await server.events("u-4")]
    assert history.count("Product Viewed") == 1 and history.count("Signed Up") == 1
    assert history.count("identify") == 1


async def test_alias_merges_profiles(server: Server, sink: Sink) -> None:
    await server.send("identify", {"userId": "old-id", "traits": {"first_name": "Ana"}})
    await server.send("alias", {"previousId": "old-id", "userId": "new-id"})
    await server.send("identify", {"userId": "new-id", "traits": {"email": "ana@example.com"}})
    await server.send("track", {"userId": "new-id", "event": "Signed Up"})
    [got] = await sink.wait_for("ana@example.com")
    assert "Hello Ana," in got.message.get_body(("plain",)).get_content()
    contact = (await server.admin.get("/admin/contacts/old-id")).json()
    assert contact["id"] == "new-id"


async def test_invalid_address_never_sends_and_says_why(server: Server, sink: Sink) -> None:
    await sign_up(server, "u-5", "not-an-address@")
    suppressed = await server.wait_event("u-5", "Email Suppressed")
    assert "invalid email" in suppressed["properties"]["reason"]
    await asyncio.sleep(0.3)
    assert sink.received == []
    contact = (await server.admin.get("/admin/contacts/u-5")).json()
    assert contact["email"] is None and "invalid email" in contact["email_error"]


async def test_wait_step_then_send_and_exit_goal(server: Server, sink: Sink) -> None:
    for user in ("cart-a", "cart-b"):
        await server.send("identify", {"userId": user, "traits": {"email": f"{user}@example.com"}})
        await server.send(
            "track", {"userId": user, "event": "Product Added", "properties": {"name": "Tent"}}
        )
    # cart-b buys within the wait: its journey ends, no reminder.
    await server.send("track", {"userId": "cart-b", "event": "Order Completed"})
    [got] = await sink.wait_for("cart-a@example.com", within=10)
    assert got.message["Subject"] == "You left Tent in your cart"
    assert 'style="color: #333' in got.message.get_body(("html",)).get_content()
    await asyncio.sleep(1.0)
    assert sink.to("cart-b@example.com") == []


async def test_deferral_is_retried_and_bounce_recorded(server: Server, sink: Sink) -> None:
    await sign_up(server, "u-6", "defer-1.six@example.com")
    await sign_up(server, "u-7", "bounce.seven@example.com")
    deferred = await server.wait_event("u-6", "Email Deferred")
    assert deferred["properties"]["smtp_code"] == 451
    await sink.wait_for("defer-1.six@example.com", within=10)
    sent = await server.wait_event("u-6", "Email Sent")
    assert sent["properties"]["attempts"] == 2
    bounced = await server.wait_event("u-7", "Email Bounced")
    assert bounced["properties"]["smtp_code"] == 550
    assert bounced["properties"]["smtp_status"] == "5.1.1"
    messages = (await server.admin.get("/admin/contacts/u-7/messages")).json()["messages"]
    assert [m["status"] for m in messages] == ["bounced"]


# A scale-out API node counts only what it takes in; each worker serves its own /metrics.
@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
async def test_metrics_count_the_pipeline(server: Server, sink: Sink) -> None:
    await sign_up(server, "u-8", "eight@example.com")
    await sink.wait_for("eight@example.com")
    await server.wait_event("u-8", "Email Sent")
    text = (await server.client.get("/metrics")).text
    assert 'mailpulse_events_total{type="identify"}' in text
    assert 'mailpulse_emails_total{status="sent"} 1.0' in text
    assert "mailpulse_event_to_smtp_seconds_count 1.0" in text
    assert 'mailpulse_stage_seconds_count{stage="sign"}' in text
