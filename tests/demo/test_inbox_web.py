from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest
from fastapi import FastAPI

from mailpulse.demo import CaptureInbox, inbox_router

HOSTILE_HTML = (
    '<p class="x">Hi "there" & \'you\'</p></iframe><script>alert("pwned")</script>'
    '<img src=x onerror="alert(1)">'
)


class _PageTags(HTMLParser):
    """The start tags of a page with their attributes, as a browser's tokenizer sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


@pytest.fixture
async def client(inbox: CaptureInbox) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(inbox_router(inbox))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo.test") as c:
        yield c


async def test_list_page_shows_messages_newest_first(client, inbox, smtp_send, shop_message):
    await smtp_send(inbox.port, shop_message("Welcome aboard"), shop_message("Your order"))

    answer = await client.get("/inbox")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert page.index("Your order") < page.index("Welcome aboard")
    assert "ada@example.com" in page and "Shop &lt;shop@example.net&gt;" in page
    links = [a["href"] for a in _PageTags(page).named("a")]
    assert links == ["/inbox/2", "/inbox/1"]
    # The refresh script is the page's only script, and the CSP allows only it (by nonce).
    (script,) = _PageTags(page).named("script")
    assert f"'nonce-{script['nonce']}'" in answer.headers["content-security-policy"]


async def test_list_page_escapes_a_hostile_subject(client, inbox, smtp_send, shop_message):
    await smtp_send(inbox.port, shop_message('<img src=x onerror="alert(1)">'))

    page = (await client.get("/inbox")).text

    assert '<img src=x onerror="alert(1)">' not in page
    assert _PageTags(page).named("img") == []
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


async def test_empty_list_page_says_so(client):
    page = (await client.get("/inbox")).text
    assert "No mail yet" in page


async def test_message_page_keeps_hostile_html_inside_the_sandboxed_srcdoc(
    client, inbox, smtp_send, shop_message
):
    await smtp_send(inbox.port, shop_message("Hostile", html=HOSTILE_HTML, text="plain <b>text"))

    answer = await client.get("/inbox/1")

    assert answer.status_code == 200
    page = answer.text
    tags = _PageTags(page)
    (frame,) = tags.named("iframe")
    assert frame["sandbox"] == ""
    assert frame["srcdoc"] == HOSTILE_HTML + "\n"
    assert tags.named("script") == [] and tags.named("img") == []
    assert "</iframe><script>" not in page
    assert "plain &lt;b&gt;text" in page
    assert "script-src 'none'" in answer.headers["content-security-policy"]


async def test_message_page_shows_headers_and_links_raw_source(
    client, inbox, smtp_send, shop_message
):
    message = shop_message("Your receipt")
    message["DKIM-Signature"] = "v=1; a=rsa-sha256; d=example.net; s=s1; bh=x; b=y"
    await smtp_send(inbox.port, message)

    page = (await client.get("/inbox/1")).text

    for shown in ("Your receipt", "&lt;abc.123@example.net&gt;", "Tue, 02 Jul 2024", "signed"):
        assert shown in page
    assert "/inbox/1/raw" in [a["href"] for a in _PageTags(page).named("a")]


async def test_message_page_without_html_part_has_no_frame(client, inbox, smtp_send, shop_message):
    await smtp_send(inbox.port, shop_message("Text only", html=None))

    page = (await client.get("/inbox/1")).text

    assert _PageTags(page).named("iframe") == []
    assert "Come back for your sweater." in page


async def test_raw_endpoint_returns_the_bytes_as_received(client, inbox, smtp_send):
    raw = b"Subject: raw\r\nX-Odd: <html>\r\n\r\n<script>not run</script>\r\n"
    await smtp_send(inbox.port, raw)

    answer = await client.get("/inbox/1/raw")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.content == inbox.get(1).raw
    assert b"<script>not run</script>" in answer.content


async def test_json_api_lists_filters_and_limits(client, inbox, smtp_send, shop_message):
    await smtp_send(inbox.port, shop_message("for ada"), to=["ada@example.com"])
    await smtp_send(
        inbox.port, shop_message("for bob", to="bob@example.org"), to=["bob@example.org"]
    )
    await smtp_send(inbox.port, shop_message("ada again"), to=["ada@example.com"])

    everything = (await client.get("/inbox/api/messages")).json()
    assert everything["received_count"] == 3
    assert [m["subject"] for m in everything["messages"]] == ["ada again", "for bob", "for ada"]
    newest = everything["messages"][0]
    assert newest["id"] == 3 and newest["url"] == "/inbox/3" and newest["raw_url"] == "/inbox/3/raw"
    assert newest["rcpt_tos"] == ["ada@example.com"] and newest["from"] == "Shop <shop@example.net>"
    assert newest["dkim_signed"] is False

    for_ada = (await client.get("/inbox/api/messages", params={"to": "ada@example.com"})).json()
    assert [m["subject"] for m in for_ada["messages"]] == ["ada again", "for ada"]
    one = (await client.get("/inbox/api/messages", params={"limit": 1})).json()
    assert [m["id"] for m in one["messages"]] == [3]


@pytest.mark.parametrize("limit", ["0", "-1", "2001", "many"])
async def test_json_api_rejects_a_bad_limit(client, limit):
    answer = await client.get("/inbox/api/messages", params={"limit": limit})
    assert answer.status_code == 422


@pytest.mark.parametrize("path", ["/inbox/7", "/inbox/7/raw"])
async def test_unknown_message_is_a_404_with_a_reason(client, path):
    answer = await client.get(path)
    assert answer.status_code == 404
    assert "no message 7" in answer.json()["detail"]


async def test_dropped_message_is_a_404(smtp_send, shop_message):
    async with CaptureInbox(capacity=1) as small:
        app = FastAPI()
        app.include_router(inbox_router(small, prefix="/mail"))
        transport = httpx.ASGITransport(app=app)
        await smtp_send(small.port, shop_message("old"), shop_message("new"))
        async with httpx.AsyncClient(transport=transport, base_url="http://demo.test") as c:
            gone = await c.get("/mail/1")
            kept = await c.get("/mail/2")
            listing = (await c.get("/mail/api/messages")).json()
    assert gone.status_code == 404 and "keeps the latest 1" in gone.json()["detail"]
    assert kept.status_code == 200
    assert [m["url"] for m in listing["messages"]] == ["/mail/2"]
