"""GET /admin/stats on a running server, embedded (SQLite) and scale-out (PostgreSQL): real
journey traffic to a sink (sent, refused at SMTP) and lifecycle events appended about a
campaign's messages (late bounces, opens and clicks by people and machines, a complaint, a
conversion, unsubscribes); the figures, all together, per campaign, journey and template and
per hour, equal a brute-force count over every event in the log. Then what is refused, and
how."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from mailpulse.campaigns import campaign_from_data
from mailpulse.policy.consent import unsubscribed_event
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.types import Event, MessageClass, SendIntent
from tests.e2e.conftest import (
    Deployment,
    Server,
    Sink,
    deployment,  # noqa: F401 (a fixture)
    embedded_server,
    running_server,
    write_project,
)

HOUR = 3600
NOW = time.time()
# Two whole hours before this one: where the campaign's events are received.
EARLIER, LATER = (NOW // HOUR - 2) * HOUR + 60, (NOW // HOUR - 1) * HOUR + 60


def _intent(n: int) -> SendIntent:
    return SendIntent(
        key=f"campaign:spring:c{n}",
        contact_id=f"c{n}",
        email=f"c{n}@example.com",
        template="welcome",
        context={},
        message_class=MessageClass.MARKETING,
        campaign="spring",
    )


def _at(ev: Event, at: float, n: int = 0) -> Event:
    name = f"{ev.message_id}:{n}" if n else ev.message_id
    return msgspec.structs.replace(ev, received_at=at, timestamp=at, message_id=name)


def campaign_events() -> list[Event]:
    c = [_intent(n) for n in range(6)]
    human = {"machine": False, "ip": "192.0.2.1", "user_agent": "Firefox"}
    machine = {"machine": True, "rule": "apple-proxy-agent", "user_agent": "Mozilla/5.0"}
    return [
        *(_at(lifecycle_event(Lifecycle.SENT, i, 0), EARLIER) for i in c[:5]),
        _at(
            lifecycle_event(Lifecycle.BOUNCED, c[5], 0, smtp_code=550, recipient=c[5].email),
            EARLIER,
        ),
        _at(lifecycle_event(Lifecycle.BOUNCED, c[4], 0, source="dsn", smtp_code=550), LATER),
        _at(lifecycle_event(Lifecycle.OPENED, c[0], 0, **human), LATER, 1),
        _at(lifecycle_event(Lifecycle.OPENED, c[0], 0, **human), LATER, 2),  # the same message
        _at(lifecycle_event(Lifecycle.OPENED, c[1], 0, **machine), LATER, 1),
        _at(lifecycle_event(Lifecycle.OPENED, c[2], 0, **human), EARLIER, 1),
        _at(lifecycle_event(Lifecycle.CLICKED, c[0], 0, **human, url="https://x.test"), LATER),
        _at(lifecycle_event(Lifecycle.CLICKED, c[1], 0, **machine, url="https://x.test"), LATER),
        _at(lifecycle_event(Lifecycle.COMPLAINED, c[3], 0, feedback_type="abuse"), LATER),
        _at(lifecycle_event(Lifecycle.CONVERTED, c[0], 0, revenue=25.5), LATER),
        unsubscribed_event("c2", c[2].email, "", source="api", at=LATER, key=c[2].key),
    ]


async def log_events(server: Server) -> list[Event]:
    log, found = server.pipeline.log, []
    for partition in range(log.partitions):
        after = 0
        while batch := await log.read(after, 1000, partition):
            found += batch
            after = batch[-1].offset
    return found


FIGURES = {
    "Email Queued": "queued",
    "Email Held": "held",
    "Email Sent": "sent",
    "Email Deferred": "deferred",
    "Email Bounced": "bounced",
    "Email Complained": "complained",
    "Email Suppressed": "suppressed",
    "Email Expired": "expired",
    "Email Failed": "failed",
    "Email Converted": "converted",
    "Unsubscribed": "unsubscribed",
}


async def brute_force(server: Server, since: float) -> dict[tuple[str, str, int], Counter]:
    """(dimension, key, hour) → figures, counted over every event in the log received from
    `since` on, each of our lifecycle events by its message: as the event says, or as its
    outbox row says for an unsubscribe (which names only the message's key)."""
    counts: dict[tuple[str, str, int], Counter] = {}
    opened: set[tuple[str, str]] = set()
    for ev in await log_events(server):
        if ev.user_id or ev.anonymous_id or ev.received_at < since:
            continue
        props = dict(ev.properties)
        if ev.event == "Unsubscribed" and "key" in props:
            row = await server.pipeline.state.outbox_get(props["key"])
            if row is not None:
                i = row.intent
                props |= {"template": i.template, "journey": i.journey, "campaign": i.campaign}
            elif props["key"].startswith("campaign:"):
                props["campaign"] = props["key"].split(":")[1]
        figure = FIGURES.get(ev.event or "")
        figures: Counter = Counter()
        if figure is not None:
            figures[figure] += 1
            if figure == "converted":
                figures["revenue"] += props["revenue"]
            if figure == "bounced" and props.get("source"):
                figures["late"] += 1
        elif ev.event in ("Email Opened", "Email Clicked"):
            kind = ("machine_" if props["machine"] else "") + ev.event.split()[1].lower()
            if (kind, props["key"]) not in opened:
                opened.add((kind, props["key"]))
                figures[kind] += 1
        hour = int(ev.received_at // HOUR * HOUR)
        for dimension, key in (
            ("all", "all"),
            ("campaign", props.get("campaign")),
            ("journey", props.get("journey")),
            ("template", props.get("template")),
        ):
            if key:
                counts.setdefault((dimension, key, hour), Counter()).update(figures)
    return counts


def expected_row(counts: dict, dimension: str, key: str, hour: int | None) -> dict:
    got: Counter = Counter()
    for (d, k, h), figures in counts.items():
        if d == dimension and k == key and hour in (None, h):
            got.update(figures)
    return {
        "sent": got["sent"],
        # A late bounce in an hour of no sends: that hour delivered none (not fewer).
        "delivered": max(0, got["sent"] - got["late"]),
        "bounced": got["bounced"],
        "opened": got["opened"],
        "clicked": got["clicked"],
        "machine_opened": got["machine_opened"],
        "machine_clicked": got["machine_clicked"],
        "complained": got["complained"],
        "converted": got["converted"],
        "revenue": round(got["revenue"], 2),
        "unsubscribed": got["unsubscribed"],
        "queued": got["queued"],
        "suppressed": got["suppressed"],
        "deferred": got["deferred"],
    }


def shown(row: dict) -> dict:
    return {k: row[k] for k in expected_row({}, "", "", None)}


@pytest.fixture
async def server(tmp_path: Path, deployment: Deployment) -> AsyncIterator[Server]:  # noqa: F811
    sink = Sink()
    await sink.start()
    project = write_project(tmp_path / "project", sink.port)
    try:
        async with running_server(project, deployment) as s:
            yield s
    finally:
        await sink.stop()


async def _traffic(server: Server) -> None:
    campaign = campaign_from_data(
        {"id": "spring", "template": "welcome", "audience": {"segment": "all"}},
        templates=["welcome"],
        segments=["all"],
        now=NOW,
    )
    await server.pipeline.state.create_campaign(
        "spring", "sent", msgspec.json.encode(campaign), NOW
    )
    for user, email in (
        ("u1", "u1@example.com"),
        ("u2", "u2@example.com"),
        ("u3", "bounce.u3@example.com"),
    ):
        r = await server.send("identify", {"userId": user, "traits": {"email": email}})
        assert r.status_code == 200, r.text
        r = await server.send("track", {"userId": user, "event": "Signed Up"})
        assert r.status_code == 200, r.text
    await server.pipeline.append(campaign_events())
    await server.wait_event("u1", "Email Sent")
    await server.wait_event("u3", "Email Bounced")
    [u1] = await server.pipeline.state.outbox_for_contact(["u1"], 1)
    [u2] = await server.pipeline.state.outbox_for_contact(["u2"], 1)
    opened = lifecycle_event(Lifecycle.OPENED, u2.intent, time.time(), machine=False)
    await server.pipeline.append(
        [
            unsubscribed_event(
                "u1", "u1@example.com", "", source="api", at=time.time(), key=u1.intent.key
            ),
            opened,
        ]
    )


async def _stats(server: Server, **params: str) -> dict:
    r = await server.admin.get("/admin/stats", params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_figures_equal_a_brute_force_count_of_the_log(server: Server) -> None:
    await _traffic(server)
    since = str(int(EARLIER))
    # Until the fold has every lifecycle event in the log (those it made come back to it).
    deadline = time.monotonic() + 20
    while True:
        counts = await brute_force(server, EARLIER)
        [everything] = (await _stats(server, **{"from": since}))["rows"]
        done = shown(everything) == expected_row(counts, "all", "all", None)
        if done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert shown(everything) == expected_row(counts, "all", "all", None)
    campaign = expected_row(counts, "campaign", "spring", None)
    assert (campaign["sent"], campaign["delivered"], campaign["bounced"]) == (5, 4, 2)
    assert (campaign["opened"], campaign["machine_opened"], campaign["clicked"]) == (2, 1, 1)
    assert (campaign["converted"], campaign["revenue"], campaign["unsubscribed"]) == (1, 25.5, 1)
    welcome = expected_row(counts, "journey", "welcome", None)
    assert (welcome["sent"], welcome["bounced"], welcome["opened"]) == (2, 1, 1)
    assert welcome["unsubscribed"] == 1  # found through the message's outbox row

    for by in ("campaign", "journey", "template"):
        got = (await _stats(server, **{"from": since, "by": by}))["rows"]
        keys = {k for d, k, _ in counts if d == by}
        assert sorted(row["key"] for row in got) == sorted(keys)
        for row in got:
            assert shown(row) == expected_row(counts, by, row["key"], None), (by, row["key"])
    series = await _stats(
        server, **{"from": since, "by": "campaign", "key": "spring", "bucket": "hour"}
    )
    assert series["from"].endswith(":00:00Z") and series["bucket"] == "hour"
    hours = [int(EARLIER // HOUR * HOUR), int(LATER // HOUR * HOUR)]
    for row, hour in zip(series["rows"], hours, strict=False):
        assert shown(row) == expected_row(counts, "campaign", "spring", hour)
    assert sum(row["sent"] for row in series["rows"]) == 5

    # The same opens and clicks as the campaign's own figures.
    engagement = (await server.admin.get("/admin/campaigns/spring")).json()
    [spring] = (await _stats(server, by="campaign", key="spring"))["rows"]
    assert engagement["engagement"]["opened"] == spring["opened"] == 2
    assert engagement["engagement"]["clicked"] == spring["clicked"] == 1
    assert spring["open_rate"] == pytest.approx(2 / 4)
    assert spring["bounce_rate"] == pytest.approx(2 / 6)


# (parameters, status, where, what the error says): off the schema a 400, a well-formed time
# that is none or a range that cannot be a 422, an unknown key a 404 (as the admin API answers).
BAD = [
    ({"from": "yesterday"}, 400, "query.from", "pattern"),
    ({"from": "nan"}, 400, "query.from", "pattern"),
    ({"from": "1e300"}, 400, "query.from", "pattern"),
    ({"by": "contact"}, 400, "query.by", "'all', 'campaign', 'journey' or 'template'"),
    ({"bucket": "week"}, 400, "query.bucket", "'hour' or 'day'"),
    ({"to": "2026-02-30T00:00:00Z"}, 422, "to", "ISO 8601"),
    ({"to": "999999999999"}, 422, "to", "to: "),
    ({"to": "9999-12-31T23:30:00Z"}, 422, "to", "year 9999"),
    ({"by": "campaign", "key": "a\x00b"}, 400, "query.key", "pattern"),
    ({"from": "2026-03-02T10:00:00Z", "to": "2026-03-01T10:00:00Z"}, 422, "to", "ends before"),
    ({"to": "1969-12-31T00:00:00Z"}, 422, "to", "before 1970"),
    ({"to": "-3600"}, 422, "to", "before 1970"),
    ({"key": "spring"}, 422, "key", "needs by"),
    ({"from": "1971-01-01T00:00:00Z", "bucket": "hour"}, 422, "bucket", "more than 10,000"),
    ({"by": "campaign", "key": "autumn"}, 404, "key", "no campaign 'autumn'"),
    ({"by": "journey", "key": "goodbye"}, 404, "key", "no journey 'goodbye'"),
    ({"by": "template", "key": "x'; DROP TABLE outbox; --"}, 404, "key", "no template"),
]


async def test_bad_input_is_refused_naming_it(tmp_path: Path) -> None:
    async with embedded_server(tmp_path) as server:
        for params, status, where, said in BAD:
            r = await server.admin.get("/admin/stats", params=params)
            assert r.status_code == status, (params, r.text)
            assert r.json()["where"] == where, params
            assert said in r.json()["error"], (params, r.json())
        # The project's journeys and templates are known before they send anything.
        for by in ("journey", "template"):
            got = await _stats(
                server, by=by, key="welcome", bucket="day", **{"from": str(int(NOW - 86400))}
            )
            [row] = got["rows"][-1:]
            assert (row["key"], row["sent"], row["open_rate"]) == ("welcome", 0, None)
        [row] = (await _stats(server, to="2026-03-02T10:30:00+02:00"))["rows"]
        assert row["key"] == "all"
        assert (await server.client.get("/admin/stats")).status_code == 401
