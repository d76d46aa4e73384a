"""GET /o/{token} and GET /c/{token} on a running server: what they answer, what they record,
and what they refuse. The messages are real: a journey sends them to an SMTP sink."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mailpulse.feedback.tracking import PIXEL_GIF
from mailpulse.render.tracking import CLICK, OPEN, Click, read_click, read_open
from tests.e2e.conftest import Deployment, Server, Sink, running_server, write_project

SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)
_CLICK = re.compile(r'href="(https://shop\.test/c/[^"]+)"')
_PIXEL = re.compile(r'src="(https://shop\.test/o/[^"]+)"')
WINDOW = 1.0  # [tracking] scanner_window of these tests' project


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Server, Sink]]:
    sink = Sink()
    await sink.start()
    project = write_project(tmp_path / "project", sink.port)
    with (project / "mailpulse.toml").open("a") as toml:
        toml.write(f'\n[tracking]\nscanner_window = "{WINDOW:g}s"\n')
        toml.write('\n[conversions]\nevent = "Order Completed"\nrevenue = "total"\n')
    try:
        async with running_server(project, Deployment("embedded", tmp_path / "data")) as server:
            yield server, sink
    finally:
        await sink.stop()


async def welcomed(server: Server, sink: Sink, user: str) -> tuple[str, str]:
    """A welcome message sent to `user`: its tracked link and pixel, as sent."""
    email = f"{user}@example.com"
    await server.send("identify", {"userId": user, "traits": {"email": email}})
    await server.send("track", {"userId": user, "event": "Signed Up"})
    [got] = await sink.wait_for(email)
    html = got.message.get_body(("html",)).get_content()
    [link] = _CLICK.findall(html)
    [pixel] = _PIXEL.findall(html)
    return link, pixel


def local(url: str, server: Server) -> str:
    """A tracked URL of the project (https://shop.test/...) on the test server."""
    return url.replace("https://shop.test", server.base)


async def engagements(server: Server, user: str, name: str, count: int) -> list[dict]:
    async with asyncio.timeout(10):
        while True:
            found = [e for e in await server.events(user) if e["event"] == name]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def browser(user_agent: str = SAFARI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers={"User-Agent": user_agent}) as client:
        yield client


async def test_a_click_redirects_where_the_link_led_and_records_who_clicked(served) -> None:
    server, sink = served
    link, _ = await welcomed(server, sink, "u-click")
    await asyncio.sleep(WINDOW)
    async with browser() as client:
        r = await client.get(local(link, server))
    assert r.status_code == 302
    assert r.headers["location"] == "https://shop.test/start?u=u-click"
    assert "no-store" in r.headers["cache-control"]
    [clicked] = await engagements(server, "u-click", "Email Clicked", 1)
    props = clicked["properties"]
    assert props["url"] == "https://shop.test/start?u=u-click"
    assert props["journey"] == "welcome" and props["template"] == "welcome"
    assert props["key"] == read_click(server.pipeline.tokens, link.rsplit("/", 1)[1]).key
    assert props["machine"] is False and props["user_agent"] == SAFARI
    assert props["ip"] == "127.0.0.1"


async def test_clicks_by_machines_redirect_and_are_recorded_as_theirs(served) -> None:
    server, sink = served
    link, _ = await welcomed(server, sink, "u-scan")
    sent = read_click(server.pipeline.tokens, link.rsplit("/", 1)[1])
    # The same link of a message made just now (a minute ahead: however slow the machine).
    just_made = Click(sent.key, sent.url, int(time.time()) + 60)
    async with browser() as client:
        soon = await client.get(f"{server.base}/c/{server.pipeline.tokens.sign(CLICK, just_made)}")
    await asyncio.sleep(WINDOW)
    async with browser("Barracuda Sentinel (EE)") as client:
        scanner = await client.get(local(link, server))
    async with browser() as client:
        head = await client.head(local(link, server))
    assert [r.status_code for r in (soon, scanner, head)] == [302, 302, 302]
    events = await engagements(server, "u-scan", "Email Clicked", 3)
    assert [e["properties"]["rule"] for e in events] == ["too-soon", "scanner-agent", "head"]
    assert all(e["properties"]["machine"] is True for e in events)


async def test_links_of_one_message_followed_in_the_same_second_are_a_scanner(served) -> None:
    server, sink = served
    link, _ = await welcomed(server, sink, "u-burst")
    await asyncio.sleep(WINDOW)
    tokens = server.pipeline.tokens
    first = read_click(tokens, link.rsplit("/", 1)[1])
    other = tokens.sign(CLICK, Click(first.key, "https://shop.test/other", first.sent_at))
    async with browser() as client:
        assert (await client.get(local(link, server))).status_code == 302
        assert (await client.get(f"{server.base}/c/{other}")).status_code == 302
    events = await engagements(server, "u-burst", "Email Clicked", 2)
    assert [e["properties"]["machine"] for e in events] == [False, True]
    assert events[1]["properties"]["rule"] == "burst"


async def test_the_pixel_is_always_served_and_only_a_valid_token_records(served) -> None:
    server, sink = served
    _, pixel = await welcomed(server, sink, "u-open")
    tokens = server.pipeline.tokens
    opened = read_open(tokens, pixel.rsplit("/", 1)[1])
    async with browser() as client:
        for url in (
            local(pixel, server),
            f"{server.base}/o/not-a-token",
            f"{server.base}/o/{pixel.rsplit('/', 1)[1][:-2]}xx",
            f"{server.base}/o/{tokens.sign(CLICK, [opened.key, 'https://a.example', 1])}",
        ):
            r = await client.get(url)
            assert r.status_code == 200 and r.content == PIXEL_GIF
            assert r.headers["content-type"] == "image/gif"
            assert "no-store" in r.headers["cache-control"]
    async with browser("Mozilla/5.0") as apple:
        assert (await apple.get(local(pixel, server))).content == PIXEL_GIF
    events = await engagements(server, "u-open", "Email Opened", 2)
    await asyncio.sleep(0.3)
    events = [e for e in await server.events("u-open") if e["event"] == "Email Opened"]
    assert [e["properties"]["machine"] for e in events] == [False, True]
    assert events[1]["properties"]["rule"] == "apple-proxy-agent"
    assert all(e["properties"]["key"] == opened.key for e in events)


async def test_a_bad_click_token_is_a_404_and_never_a_redirect(served) -> None:
    server, sink = served
    link, pixel = await welcomed(server, sink, "u-bad")
    token = link.rsplit("/", 1)[1]
    tokens = server.pipeline.tokens
    forged = tokens.sign(OPEN, read_open(tokens, pixel.rsplit("/", 1)[1]))  # another purpose
    bad = [
        "garbage",
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        token.replace(".", ""),
        "x" * 5000,
        forged,
        pixel.rsplit("/", 1)[1],
    ]
    async with browser() as client:
        for candidate in bad:
            r = await client.get(f"{server.base}/c/{candidate}")
            assert r.status_code == 404, candidate
            assert "location" not in r.headers
            assert r.json()["where"] == "token"
        page = await client.get(f"{server.base}/c/garbage", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "not valid" in page.text
    await asyncio.sleep(0.3)
    assert not [e for e in await server.events("u-bad") if e["event"] == "Email Clicked"]


async def test_journey_stats_show_what_its_messages_did(served) -> None:
    server, sink = served
    link, pixel = await welcomed(server, sink, "u-stats")
    await server.wait_event("u-stats", "Email Sent")
    await asyncio.sleep(WINDOW)
    async with browser() as client:
        await client.get(local(pixel, server))
        await client.get(local(link, server))
    async with browser("Mozilla/5.0") as apple:
        await apple.get(local(pixel, server))
    await engagements(server, "u-stats", "Email Clicked", 1)
    r = await server.send(
        "track", {"userId": "u-stats", "event": "Order Completed", "properties": {"total": 42.5}}
    )
    assert r.status_code == 200
    [converted] = await engagements(server, "u-stats", "Email Converted", 1)
    assert converted["properties"]["journey"] == "welcome"
    assert converted["properties"]["revenue"] == 42.5
    async with asyncio.timeout(10):
        while True:
            r = await server.admin.get("/admin/journeys/welcome")
            figures = r.json()["engagement"]
            if figures["converted"]:
                break
            await asyncio.sleep(0.05)
    assert figures == {
        "sent": 1,
        "opened": 1,
        "clicked": 1,
        "machine_opened": 1,
        "machine_clicked": 0,
        "converted": 1,
        "revenue": 42.5,
        "open_rate": 1.0,
        "click_rate": 1.0,
        "conversion_rate": 1.0,
    }
