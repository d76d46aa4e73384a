"""Unsubscribes, preferences and double opt-in end to end over real SMTP, in both deployments.

A campaign's marketing message carries List-Unsubscribe (HTTPS and mailto) and
List-Unsubscribe-Post, which dkimpy finds under the signature; its one-click URL, POSTed as a
mailbox provider does (no cookie, no key, a form body), answers 200 without a redirect, and
the next marketing message of its topic is suppressed with `Email Suppressed` while a receipt
still goes; resubscribing from the preference page brings the marketing back. A `Subscribed`
to a double opt-in topic mails a confirmation (caught at the sink); its link, followed and
confirmed, lets the topic's next campaign reach the contact, and nobody without consent."""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage
from pathlib import Path

import dkim
import httpx
import pytest

from tests.e2e.conftest import Server, Sink, dkim_dns, write_project

JOURNEYS = {
    "receipt": """\
        trigger: {event: Order Completed}
        entry: always
        message_class: transactional
        steps:
          - send: welcome
        """,
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port, journeys=JOURNEYS)


async def people(server: Server, users: dict[str, str]) -> None:
    calls = [
        {"type": "identify", "userId": u, "traits": {"email": a, "first_name": u, "plan": "pro"}}
        for u, a in users.items()
    ]
    assert (await server.send("batch", {"batch": calls})).status_code == 200
    async with asyncio.timeout(10):
        for user in users:
            while (await server.admin.get(f"/admin/contacts/{user}")).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


async def campaign(server: Server, campaign_id: str, topic: str, recipients: int) -> dict:
    """Send a campaign of `topic` to everyone; its messages per state once all are final."""
    body = {"id": campaign_id, "template": "welcome", "audience": "all", "topic": topic}
    r = await server.admin.post("/admin/campaigns", json=body)
    assert r.status_code == 201, r.text
    async with asyncio.timeout(20):
        while True:
            state = (await server.admin.get(f"/admin/campaigns/{campaign_id}")).json()
            messages = state["messages"]
            waiting = messages.get("queued", 0) + messages.get("deferred", 0)
            if state["status"] == "sent" and sum(messages.values()) == recipients and not waiting:
                return messages
            await asyncio.sleep(0.1)


def latest(sink: Sink, rcpt: str) -> EmailMessage:
    return sink.to(rcpt)[-1].message


def local(server: Server, url: str) -> str:
    """A link of a message (at the project's url) on the test server."""
    return server.base + re.sub(r"^https://shop\.test", "", url)


def signed_headers(message: EmailMessage) -> list[str]:
    signature = re.sub(r"\s+", "", str(message["DKIM-Signature"]))
    found = re.search(r";h=([^;]+);", signature)
    assert found is not None
    return found.group(1).lower().split(":")


async def test_one_click_suppresses_marketing_and_resubscribing_restores_it(
    server: Server, sink: Sink, project_dir: Path
) -> None:
    await people(server, {"ann": "ann@example.com", "bo": "bo@example.com"})
    assert await campaign(server, "first", "offers", 2) == {"sent": 2}
    for rcpt in ("ann@example.com", "bo@example.com"):
        [got] = sink.to(rcpt)
        assert dkim.verify(got.data, dnsfunc=dkim_dns(project_dir))
        assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(signed_headers(got.message))
        assert got.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header = str(latest(sink, "ann@example.com")["List-Unsubscribe"])
    one_click = re.match(
        r"<(https://shop\.test/u/[^>]+)>, <mailto:unsubscribe@shop\.test\?", header
    )
    assert one_click is not None
    # With curl, as a mailbox provider sends it: no cookie, no key, the RFC 8058 form body.
    curl = await asyncio.create_subprocess_exec(
        "curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code} %{redirect_url}",
        "--data", "List-Unsubscribe=One-Click", local(server, one_click.group(1)),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    answer, _ = await curl.communicate()
    assert answer.decode().strip() == "200"  # no redirect either

    # From the moment that answer came: the topic's next campaign skips ann, a receipt goes.
    assert await campaign(server, "second", "offers", 2) == {"sent": 1, "suppressed": 1}
    skipped = await server.wait_event("ann", "Email Suppressed")
    assert skipped["properties"]["campaign"] == "second"
    assert skipped["properties"]["reason"].startswith("suppressed for topic offers: unsubscribe")
    await server.send("track", {"userId": "ann", "event": "Order Completed"})
    await sink.wait_for("ann@example.com", 2)
    receipt = latest(sink, "ann@example.com")
    assert receipt["List-Unsubscribe"] is None  # transactional
    assert [len(sink.to(r)) for r in ("ann@example.com", "bo@example.com")] == [2, 2]

    # Resubscribed from the preference page the message links to: offers reach ann again.
    html = receipt.get_body(("html",)).get_content()
    preferences = re.search(r"https://shop\.test/u/([^\"]+)", html)
    assert preferences is not None
    async with httpx.AsyncClient() as browser:
        page = await browser.post(
            f"{server.base}/p/{preferences.group(1)}",
            content=b"action=subscribe&topic=offers",
            headers=FORM,
        )
    assert page.status_code == 200 and "Saved: you are subscribed to Offers." in page.text
    async with asyncio.timeout(10):
        while (await server.admin.get("/admin/suppressions/ann@example.com")).status_code != 404:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert await campaign(server, "third", "offers", 2) == {"sent": 2}
    assert len(sink.to("ann@example.com")) == 3


async def test_double_opt_in_mails_a_confirmation_and_flows_once_confirmed(
    server: Server, sink: Sink, project_dir: Path
) -> None:
    await people(server, {"ann": "ann@example.com", "bo": "bo@example.com"})
    subscribed = {
        "userId": "ann",
        "event": "Subscribed",
        "properties": {"topic": "newsletter", "wording": "Send me the weekly letter"},
        "context": {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0"},
    }
    assert (await server.send("track", subscribed)).status_code == 200
    [mail] = await sink.wait_for("ann@example.com")
    confirmation = mail.message
    assert confirmation["Subject"] == "Please confirm: Newsletter from Testshop"
    assert confirmation["List-Unsubscribe"] is None  # transactional
    assert dkim.verify(mail.data, dnsfunc=dkim_dns(project_dir))
    link = re.search(
        r"https://shop\.test/p/confirm/[A-Za-z0-9_.-]+",
        confirmation.get_body(("html",)).get_content(),
    )
    assert link is not None

    # Not confirmed yet: the newsletter reaches nobody.
    assert await campaign(server, "issue-1", "newsletter", 2) == {"suppressed": 2}
    async with httpx.AsyncClient() as browser:
        page = await browser.get(local(server, link.group()))  # a scanner, or the person
        assert page.status_code == 200 and "Confirm your subscription" in page.text
        confirmed = await browser.post(local(server, link.group()))
    assert confirmed.status_code == 200 and "Subscription confirmed" in confirmed.text
    async with asyncio.timeout(10):
        while (await server.admin.get("/admin/contacts/ann/consent")).json()["topics"] != {  # noqa: ASYNC110
            "newsletter": "confirmed"
        }:
            await asyncio.sleep(0.05)
    assert await campaign(server, "issue-2", "newsletter", 2) == {"sent": 1, "suppressed": 1}
    issue = latest(sink, "ann@example.com")
    assert issue["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sink.to("bo@example.com") == []
    records = (await server.admin.get("/admin/contacts/ann/consent")).json()["records"]
    assert [(r["action"], r["source"]) for r in records] == [
        ("granted", "api"),
        ("confirmed", "double_opt_in"),
    ]
    assert (records[0]["ip"], records[0]["wording"]) == ("203.0.113.9", "Send me the weekly letter")
