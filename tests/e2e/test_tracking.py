"""Tracking end to end, over real SMTP and HTTP, in both deployments: a campaign's messages
reach the sink with tracked links and an open pixel (and a DKIM signature that still holds);
following them as a person, as Apple's proxy and as a link scanner records each open and click
as whose it is, a later order is attributed to the person's click, and the campaign's figures
count people apart from machines, with the revenue."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from pathlib import Path

import dkim
import httpx
import pytest

from mailpulse.feedback.tracking import PIXEL_GIF
from tests.e2e.conftest import Server, Sink, dkim_dns, mailpulse_cli, write_project

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)
WINDOW = 1.0  # the project's scanner window


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    project = write_project(tmp_path / "project", sink.port, journeys={})
    with (project / "mailpulse.toml").open("a") as toml:
        toml.write(
            f'\n[tracking]\nscanner_window = "{WINDOW:g}s"\n\n'
            '[conversions]\nevent = "Order Completed"\nrevenue = "total"\nwithin = "1h"\n'
        )
    return project


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a" and found.get("href"):
            self.hrefs.append(found["href"] or "")
        if tag == "img" and found.get("src"):
            self.images.append(found["src"] or "")


def links_of(sink: Sink, email: str) -> _Links:
    [got] = sink.to(email)
    parser = _Links()
    parser.feed(got.message.get_body(("html",)).get_content())
    return parser


def on(server: Server, url: str) -> str:
    """A URL of the project's tracking domain (its url, https://shop.test) on the test server."""
    assert url.startswith("https://shop.test/")
    return server.base + url.removeprefix("https://shop.test")


async def figures(server: Server, want: dict) -> dict:
    async with asyncio.timeout(15):
        while True:
            r = await server.admin.get("/admin/campaigns/spring")
            engagement = r.json()["engagement"]
            if all(engagement[k] == v for k, v in want.items()):
                return engagement
            await asyncio.sleep(0.1)


async def test_a_tracked_campaign_counts_people_apart_from_machines(
    server: Server, sink: Sink, project_dir: Path
) -> None:
    people = {"ann": "ann@example.com", "bob": "bob@example.com"}
    calls = [
        {"type": "identify", "userId": u, "traits": {"email": e, "first_name": u}}
        for u, e in people.items()
    ]
    assert (await server.send("batch", {"batch": calls})).status_code == 200
    async with asyncio.timeout(10):  # the fold has them before the campaign reads its audience
        for user in people:
            while (await server.admin.get(f"/admin/contacts/{user}")).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    r = await server.admin.post(
        "/admin/campaigns", json={"id": "spring", "template": "welcome", "audience": "all"}
    )
    assert r.status_code == 201, r.text
    await sink.wait_until(lambda: len(sink.received) >= 2, within=20)

    ann, bob = links_of(sink, people["ann"]), links_of(sink, people["bob"])
    [ann_click] = [h for h in ann.hrefs if h.startswith("https://shop.test/c/")]
    [ann_pixel] = [i for i in ann.images if i.startswith("https://shop.test/o/")]
    [bob_click] = [h for h in bob.hrefs if h.startswith("https://shop.test/c/")]
    # The unsubscribe links stay mailpulse's own, and the signature covers the tracked body.
    assert any("/u/" in h for h in ann.hrefs)
    assert dkim.verify(sink.to(people["ann"])[0].data, dnsfunc=dkim_dns(project_dir))

    async with httpx.AsyncClient(headers={"User-Agent": "Barracuda Sentinel (EE)"}) as scanner:
        scanned = await scanner.get(on(server, bob_click))
    assert scanned.status_code == 302  # a scanner is answered like anyone
    await asyncio.sleep(WINDOW)
    async with httpx.AsyncClient(headers={"User-Agent": BROWSER}) as browser:
        pixel = await browser.get(on(server, ann_pixel))
        clicked = await browser.get(on(server, ann_click))
    async with httpx.AsyncClient(headers={"User-Agent": "Mozilla/5.0"}) as apple:
        assert (await apple.get(on(server, ann_pixel))).content == PIXEL_GIF
    assert pixel.status_code == 200 and pixel.content == PIXEL_GIF
    assert clicked.status_code == 302
    assert clicked.headers["location"] == "https://shop.test/start?u=ann"

    clicks = await server.wait_event("ann", "Email Clicked")
    assert clicks["properties"]["campaign"] == "spring"
    assert clicks["properties"]["machine"] is False
    bob_clicks = await server.wait_event("bob", "Email Clicked")
    assert bob_clicks["properties"]["machine"] is True
    assert bob_clicks["properties"]["rule"] == "scanner-agent"

    order = {"userId": "ann", "event": "Order Completed", "properties": {"total": 99.5}}
    assert (await server.send("track", order)).status_code == 200
    converted = await server.wait_event("ann", "Email Converted")
    assert converted["properties"]["campaign"] == "spring"
    assert converted["properties"]["revenue"] == 99.5

    counted = await figures(server, {"converted": 1, "machine_opened": 1})
    assert counted == {
        "sent": 2,
        "opened": 1,
        "clicked": 1,
        "machine_opened": 1,
        "machine_clicked": 1,
        "converted": 1,
        "revenue": 99.5,
        "open_rate": 0.5,
        "click_rate": 0.5,
        "conversion_rate": 0.5,
    }
    code, out, err = await mailpulse_cli(server, "campaign", "status", "spring")
    assert code == 0, err
    assert "opened 1 (50.0%), clicked 1 (50.0%); by machines: opened 1, clicked 1" in out
    assert "converted 1 (50.0%), revenue 99.50" in out
