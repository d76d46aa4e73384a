"""The public unsubscribe, preference and confirmation pages on a real embedded server over
HTTP: a one-click POST as a mailbox provider (or curl) sends it takes effect with 200 and no
redirect; a GET never changes anything; forged, malformed and misused tokens are 404s that
change nothing; the preference page's forms; escaping; and the admin API's consent records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mailpulse.feedback.unsubscribe import CONFIRM, UNSUBSCRIBE, MessageToken
from mailpulse.policy.suppression import address_hash
from mailpulse.tokens import TokenSigner
from mailpulse.types import Suppression
from tests.e2e.conftest import Server, embedded_server

ANN = "ann@example.com"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with embedded_server(tmp_path) as s:
        identify = {"type": "identify", "userId": "ann", "traits": {"email": ANN}}
        assert (await s.send("identify", identify)).status_code == 200
        async with asyncio.timeout(10):
            while (await s.admin.get("/admin/contacts/ann")).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        yield s


@pytest.fixture
async def public(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no key and no cookies, as a mailbox provider or a browser comes."""
    async with httpx.AsyncClient(base_url=server.base, follow_redirects=False) as client:
        yield client


def token(server: Server, topic: str = "offers", purpose: str = UNSUBSCRIBE, **fields: str) -> str:
    said = {"contact_id": "ann", "address": ANN, "topic": topic, "key": "campaign:sale:ann"}
    said.update(fields)
    return server.pipeline.tokens.sign(purpose, MessageToken(**said))


async def entries(server: Server, address: str = ANN) -> list[Suppression]:
    return await server.pipeline.state.suppressions_for([address_hash(address)])


async def settled(server: Server, want: set[tuple[str, str]]) -> None:
    """Until the address's entries are (topic, reason) `want`."""
    async with asyncio.timeout(10):
        while {(e.topic, e.reason) for e in await entries(server)} != want:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def consent_records(server: Server) -> list[dict]:
    """Ann's consent records, once there are any."""
    async with asyncio.timeout(10):
        while True:
            records = (await server.admin.get("/admin/contacts/ann/consent")).json()["records"]
            if records:
                return records
            await asyncio.sleep(0.05)


async def subscription_events(server: Server) -> list[dict]:
    return [e for e in await server.events("ann") if e["event"] in ("Subscribed", "Unsubscribed")]


async def test_one_click_takes_effect_at_once_with_200_and_no_redirect(
    server: Server, public: httpx.AsyncClient
) -> None:
    url = f"/u/{token(server)}"
    r = await public.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Gmail"},
    )
    assert r.status_code == 200 and "location" not in r.headers
    assert "You are unsubscribed" in r.text and "set-cookie" not in r.headers
    await settled(server, {("offers", "unsubscribe")})
    [entry] = await entries(server)
    assert (entry.source, entry.detail) == ("one_click", "from message campaign:sale:ann")
    # Again (a provider retrying), or as multipart/form-data: the same answer, no new event.
    again = await public.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert again.status_code == 200
    [event] = await subscription_events(server)
    assert event["properties"]["source"] == "one_click"
    assert event["properties"]["key"] == "campaign:sale:ann"


async def test_a_token_without_a_topic_unsubscribes_from_all_marketing(
    server: Server, public: httpx.AsyncClient
) -> None:
    page = await public.get(f"/u/{token(server, topic='')}")
    assert "all marketing email from Testshop" in page.text
    assert (await public.post(f"/u/{token(server, topic='')}")).status_code == 200
    await settled(server, {("", "unsubscribe")})


async def test_a_get_shows_a_page_and_never_unsubscribes(
    server: Server, public: httpx.AsyncClient
) -> None:
    url = f"/u/{token(server)}"
    for _ in range(3):  # a link scanner, a preview, the person
        r = await public.get(url)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert '<form method="post">' in r.text and "Offers email from Testshop" in r.text
        assert "<script" not in r.text
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    for path in ("/p/", "/p/confirm/"):
        purpose = CONFIRM if "confirm" in path else UNSUBSCRIBE
        assert (await public.get(path + token(server, "newsletter", purpose))).status_code == 200
    await asyncio.sleep(0.5)  # the fold had its chance
    assert await entries(server) == []
    assert await subscription_events(server) == []


@pytest.mark.parametrize(
    "path",
    [
        "/u/{bad}",
        "/p/{bad}",
        "/p/confirm/{bad}",
    ],
)
@pytest.mark.parametrize(
    "bad",
    [
        "nothing-here",
        "a.b",
        "x" * 5000,
        "{other_key}",
        "{other_purpose}",
        "{tampered}",
    ],
)
async def test_forged_and_malformed_tokens_are_404s_that_change_nothing(
    server: Server, public: httpx.AsyncClient, path: str, bad: str
) -> None:
    mac = token(server).partition(".")[2]
    replacements = {
        "{other_key}": TokenSigner("z" * 32).sign(UNSUBSCRIBE, ["ann", ANN, "", "k"]),
        # A confirm token where an unsubscribe one goes, and the other way round.
        "{other_purpose}": token(server, purpose=CONFIRM if path != "/p/confirm/{bad}" else "x"),
        "{tampered}": token(server, address="bo@example.com").partition(".")[0] + "." + mac,
    }
    url = path.format(bad=replacements.get(bad, bad))
    for method in ("GET", "POST"):
        r = await public.request(
            method,
            url,
            content=b"action=unsubscribe&topic=",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code in (404, 414), r.text
        if r.status_code == 404:
            assert r.json()["where"] == "token" and r.json()["error"].startswith("no such link")
    await asyncio.sleep(0.2)
    assert await entries(server) == []
    assert await subscription_events(server) == []


async def test_the_preference_page_unsubscribes_and_resubscribes(
    server: Server, public: httpx.AsyncClient
) -> None:
    url = f"/p/{token(server)}"
    page = await public.get(url)
    assert page.status_code == 200
    assert 'Offers</strong> <span class="state">Subscribed' in page.text
    assert 'Newsletter</strong> <span class="state">Not subscribed' in page.text
    form = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Firefox"}
    r = await public.post(url, content=b"action=unsubscribe&topic=offers", headers=form)
    assert r.status_code == 200
    assert "Saved: you are unsubscribed from Offers." in r.text
    assert 'Offers</strong> <span class="state">Unsubscribed' in r.text
    await settled(server, {("offers", "unsubscribe")})
    # Subscribing to a double opt-in topic here confirms it: the token came to the address.
    r = await public.post(url, content=b"action=subscribe&topic=newsletter", headers=form)
    assert 'Newsletter</strong> <span class="state">Subscribed' in r.text
    r = await public.post(url, content=b"action=unsubscribe&topic=", headers=form)
    assert "You are unsubscribed from all marketing email from Testshop." in r.text
    await settled(server, {("offers", "unsubscribe"), ("", "unsubscribe")})
    r = await public.post(url, content=b"action=subscribe&topic=", headers=form)
    r = await public.post(url, content=b"action=subscribe&topic=offers", headers=form)
    await settled(server, set())
    consent = (await server.admin.get("/admin/contacts/ann/consent")).json()
    assert consent["topics"] == {"offers": "granted", "newsletter": "confirmed"}
    shown = [(r["topic"], r["action"], r["source"]) for r in consent["records"]]
    assert shown == [
        ("offers", "withdrawn", "preference_center"),
        ("newsletter", "confirmed", "preference_center"),
        ("", "withdrawn", "preference_center"),
        ("", "granted", "preference_center"),
        ("offers", "granted", "preference_center"),
    ]
    newsletter = consent["records"][1]
    assert newsletter["wording"] == "Newsletter: The weekly letter"
    assert (newsletter["user_agent"], newsletter["ip"]) == ("Firefox", "127.0.0.1")
    page = await public.get(url)
    assert 'Offers</strong> <span class="state">Subscribed' in page.text


async def test_a_resubscribe_never_lifts_what_is_not_the_persons(
    server: Server, public: httpx.AsyncClient
) -> None:
    await server.admin.post("/admin/suppressions", json={"address": ANN, "reason": "complaint"})
    url = f"/p/{token(server)}"
    page = await public.get(url)
    assert "We do not send email to this address." in page.text
    assert "Resubscribe" not in page.text
    r = await public.post(
        url,
        content=b"action=subscribe&topic=",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and "We do not send email to this address." in r.text
    await asyncio.sleep(0.5)
    assert [(e.topic, e.reason) for e in await entries(server)] == [("", "complaint")]


@pytest.mark.parametrize(
    ("body", "status", "where"),
    [
        (b"action=delete&topic=offers", 400, "action"),
        (b"topic=offers", 400, "action"),
        (b"action=subscribe&topic=ofers", 400, "topic"),
        (b"action=subscribe&topic=" + b"x" * 5000, 413, "body"),
        (b"action=subscribe&topic=\xff", 400, "body"),
    ],
)
async def test_bad_forms_are_refused_and_change_nothing(
    server: Server, public: httpx.AsyncClient, body: bytes, status: int, where: str
) -> None:
    r = await public.post(
        f"/p/{token(server)}",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (r.status_code, r.json()["where"]) == (status, where)
    await asyncio.sleep(0.2)
    assert await subscription_events(server) == []


async def test_what_a_page_shows_is_escaped(server: Server, public: httpx.AsyncClient) -> None:
    hostile = '"<script>alert(1)</script>"@example.com'
    page = await public.get(f"/p/{token(server, address=hostile)}")
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_a_confirmation_link_confirms_on_its_button_only(
    server: Server, public: httpx.AsyncClient
) -> None:
    url = f"/p/confirm/{token(server, 'newsletter', CONFIRM)}"
    page = await public.get(url)
    assert "Yes, send me Newsletter: The weekly letter" in page.text
    r = await public.post(url, headers={"User-Agent": "Safari"})
    assert r.status_code == 200 and "Subscription confirmed" in r.text
    preferences = r.text.split('href="../')[1].split('"')[0]
    assert (await public.get(f"/p/{preferences}")).status_code == 200
    [record] = await consent_records(server)
    assert (record["topic"], record["action"], record["source"]) == (
        "newsletter",
        "confirmed",
        "double_opt_in",
    )
    assert record["wording"] == "Yes, send me Newsletter: The weekly letter"
    # A topic the project no longer has.
    gone = await public.get(f"/p/confirm/{token(server, 'retired', CONFIRM)}")
    assert gone.status_code == 404 and gone.json()["where"] == "token"


async def test_the_consent_records_are_for_admins(
    server: Server, public: httpx.AsyncClient
) -> None:
    assert (await public.get("/admin/contacts/ann/consent")).status_code == 401
    missing = await server.admin.get("/admin/contacts/nobody/consent")
    assert missing.status_code == 404 and "nobody" in missing.json()["error"]
    # The customer's own record of consent, through the tracking API.
    subscribed = {
        "userId": "ann",
        "event": "Subscribed",
        "properties": {"topic": "offers", "wording": "Yes to offers", "source": "checkout"},
        "context": {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0"},
    }
    assert (await server.send("track", subscribed)).status_code == 200
    [record] = await consent_records(server)
    assert {
        k: record[k]
        for k in ("address", "topic", "action", "source", "ip", "user_agent", "wording")
    } == {
        "address": ANN,
        "topic": "offers",
        "action": "granted",
        "source": "checkout",
        "ip": "203.0.113.9",
        "user_agent": "Mozilla/5.0",
        "wording": "Yes to offers",
    }
