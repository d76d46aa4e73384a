"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) while traffic
flows: events over HTTP, mail to a real aiosmtpd sink. Its figures move, agree with /metrics
once the traffic stops, a message's timeline opens from a search, bad input is told plainly,
and screenshots are kept under tests/artifacts/ (ignored by git)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ADMIN_KEY, Deployment, Server, Sink, running_server, write_project

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# Never a browser download, never a network call of Chromium's own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
USERS = 40
NOTHING = "\N{EN DASH}"  # what a tile shows for a figure not known yet


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def metric(server: Server, name: str, **labels: str) -> float:
    """A sample of /metrics, summed over the series whose labels include `labels`."""
    text = (await server.client.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def settled(server: Server, **counts: int) -> None:
    """Until /metrics counts these messages by status: every one has ended."""
    async with asyncio.timeout(30):
        while True:
            now = [await metric(server, "mailpulse_emails_total", status=s) for s in counts]
            if now == list(counts.values()):
                return
            await asyncio.sleep(0.1)


async def shown(page: Page, output: str) -> float | None:
    raw = await page.get_attribute(f"#{output}", "data-value")
    return float(raw) if raw else None


async def traffic(server: Server) -> None:
    """Sign-ups at about 10 a second, each a welcome message; some bounce, some are deferred
    once (the sink answers by local part)."""
    for n in range(USERS):
        local = "bounce.u" if n % 10 == 7 else "defer-1.u" if n % 10 == 3 else "u"
        r = await server.send(
            "identify", {"userId": f"u-{n}", "traits": {"email": f"{local}{n}@example.com"}}
        )
        assert r.status_code == 200, r.text
        r = await server.send("track", {"userId": f"u-{n}", "event": "Signed Up"})
        assert r.status_code == 200, r.text
        await asyncio.sleep(0.1)


async def launch_ab_campaign(server: Server) -> None:
    """Half the contacts get variant a or b; the rest wait for a decision an hour away."""
    body = {
        "id": "spring",
        "template": "welcome",
        "audience": "all",
        "ab_test": {
            "variants": [{"id": "a"}, {"id": "b", "subject": "Last chance"}],
            "test_share": 0.5,
            "wait": "1h",
            "winner_by": "opens",
        },
    }
    created = await server.admin.post("/admin/campaigns", json=body)
    assert created.status_code == 201, created.text


async def sign_in(page: Page, base: str) -> None:
    await page.goto(f"{base}/dashboard")
    assert page.url == f"{base}/dashboard/login"  # no session: the login form, no figure
    await page.fill("#key", "not-a-key")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("alert")).to_contain_text("unknown key")
    assert await page.locator("#charts").count() == 0
    await page.fill("#key", ADMIN_KEY)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/dashboard")


async def test_dashboard_moves_with_traffic_and_agrees_with_metrics(tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    sink = Sink()
    await sink.start()
    project = write_project(tmp_path / "project", sink.port)
    try:
        async with (
            running_server(project, Deployment("embedded", tmp_path / "data")) as server,
            chromium() as browser,
        ):
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            # No file of the page missing (its icon included): only the refusals asked for.
            asked = ("/dashboard/login", "/admin/messages")
            page.on(
                "response",
                lambda r: (
                    problems.append(f"{r.status} {r.url}")
                    if r.status >= 400 and urlsplit(r.url).path not in asked
                    else None
                ),
            )
            # Script errors and CSP refusals; not the 401 and 404 answers the test asks for.
            page.on(
                "console",
                lambda msg: (
                    problems.append(msg.text)
                    if msg.type in ("error", "warning")
                    and not msg.text.startswith("Failed to load resource")
                    else None
                ),
            )
            await sign_in(page, server.base)
            await expect(page.locator("#status")).to_contain_text("live", timeout=10_000)

            flowing = asyncio.create_task(traffic(server))
            # The figures move while traffic flows: the sent count climbs, events/s shows.
            await sink.wait_until(lambda: len(sink.received) >= 5, within=20)
            first = await shown(page, "total-sent") or 0.0
            await sink.wait_until(lambda: len(sink.received) >= 15, within=20)
            await expect(page.locator("#total-sent")).not_to_have_attribute(
                "data-value", str(first), timeout=10_000
            )
            await expect(page.locator("#tile-events-rate")).not_to_have_text(NOTHING)
            await expect(page.locator("#tile-p50")).to_contain_text("ms", timeout=10_000)
            await page.screenshot(path=ARTIFACTS / "dashboard-live.png", full_page=True)
            await flowing

            # Once it stops, what the page shows is what /metrics says.
            delivered = USERS - USERS // 10  # the bounce.* ones never arrive
            await settled(server, sent=delivered, bounced=USERS // 10)
            for output, name, labels in (
                ("total-sent", "mailpulse_emails_total", {"status": "sent"}),
                ("total-events", "mailpulse_events_total", {}),
                ("total-bounced", "mailpulse_emails_total", {"status": "bounced"}),
                ("total-deferred", "mailpulse_emails_total", {"status": "deferred"}),
            ):
                expected = await metric(server, name, **labels)
                assert expected > 0, name
                await expect(page.locator(f"#{output}")).to_have_attribute(
                    "data-value", f"{expected:g}", timeout=10_000
                )
            assert await page.locator("#charts .chart canvas").count() >= 9
            await expect(page.locator("#alerts tr[data-alert=bounce_rate]")).to_be_visible()
            await expect(page.locator("#journeys tbody tr[data-journey=welcome]")).to_be_visible()
            await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)

            # A contact's messages, then one message's whole life from the log.
            await page.fill("#q", "u-7")
            await page.click("#search button[type=submit]")
            await expect(page.locator("#found tbody tr")).to_have_count(1)
            await page.click("#found tbody tr button")
            events = page.locator("#timeline-events")
            await expect(events).to_contain_text("Email Queued")
            await expect(events).to_contain_text("Email Bounced")
            await expect(events).to_contain_text("550")

            # By Message-ID: the timeline opens at once, a deferral and the send in order.
            [got] = [r for r in sink.received if r.rcpt == "defer-1.u3@example.com"]
            await page.fill("#q", got.message["Message-ID"])
            await page.click("#search button[type=submit]")
            await expect(page.locator("#timeline-title")).to_contain_text("sent")
            said = await events.locator(".what").all_inner_texts()
            assert said.index("Email Deferred") < said.index("Email Sent"), said
            await page.locator("#messages").screenshot(path=ARTIFACTS / "dashboard-message.png")

            # A campaign's progress and its A/B arms side by side, with their significance.
            await launch_ab_campaign(server)
            row = page.locator("#campaigns tr[data-campaign=spring]")
            await expect(row).to_contain_text("spring", timeout=15_000)
            arms = page.locator("#campaigns tr.arm")
            await expect(arms).to_have_count(2, timeout=15_000)
            await expect(arms.first).to_contain_text("variant a")
            await expect(arms.nth(1)).to_contain_text("variant b")
            await expect(page.locator("#campaigns")).to_contain_text("best so far")
            assert await row.locator("progress").count() == 1
            await page.locator("#campaigns").screenshot(path=ARTIFACTS / "dashboard-campaigns.png")

            await page.fill("#q", "nobody-at-all")
            await page.click("#search button[type=submit]")
            await expect(page.locator("#search-error")).to_contain_text("no contact is known")
            # What a search says back is text on the page, never markup.
            hostile = '<img src=x onerror="document.title=1">'
            await page.fill("#q", hostile)
            await page.click("#search button[type=submit]")
            await expect(page.locator("#search-error")).to_contain_text(hostile)
            assert await page.title() == "mailpulse · dashboard"
            assert await page.locator("#messages img").count() == 0
            assert problems == []

            # Signed out, the page and its JSON are closed again.
            await page.click("header button[type=submit]")
            await page.wait_for_url(f"{server.base}/dashboard/login")
            answer = await page.request.get(f"{server.base}/admin/dashboard/live")
            assert answer.status == 401
    finally:
        await sink.stop()
