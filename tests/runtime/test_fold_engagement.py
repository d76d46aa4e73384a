"""Engagement in the fold: opens and clicks counted per campaign and journey, each message once,
people apart from machines; a scanner's burst taken back; conversions attributed to the last
click by a person within their window, as `Email Converted` events and revenue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from mailpulse.campaigns import campaign_from_data
from mailpulse.campaigns.abtest import Conversion
from mailpulse.campaigns.runner import campaign_copy
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.types import Event
from tests.runtime.test_fold import Clock, Harness, running

T = 1_800_000_000.0
ORDER = Conversion(event="Order Completed", within=3600.0, revenue="revenue")
SPRING, WELCOME = "campaign:spring:ann", "journey:welcome:ann:1:send"


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = T
    return clock


_ids = iter(range(1_000_000))


def engaged(
    user: str, kind: Lifecycle, at: float, key: str, machine: bool = False, **more: object
) -> Event:
    """An open or click as the tracking endpoints append it."""
    props: dict[str, object] = {"key": key, "template": "t", "machine": machine, **more}
    if key.startswith("journey:"):
        props["journey"] = "welcome"
    if key.startswith("campaign:"):
        props["campaign"] = key.split(":")[1]
    return Event(
        type="track",
        message_id=f"{kind.value}:{key}:{next(_ids)}",
        contact_key=user,
        event=kind.value,
        properties=props,
        timestamp=at,
        received_at=at,
    )


def order(user: str, at: float, n: int, revenue: object) -> Event:
    return Event(
        type="track",
        message_id=f"order-{user}-{n}",
        contact_key=user,
        user_id=user,
        event="Order Completed",
        properties={"revenue": revenue},
        timestamp=at,
        received_at=at,
    )


async def settled(h: Harness) -> None:
    """Everything appended so far folded, and its lifecycle events shipped."""
    async with asyncio.timeout(5):
        while h.fold.checkpoint < await h.log.head() or await h.state.unshipped_lifecycle(1):  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def converted(h: Harness) -> list[Event]:
    return [e for e in await h.log.read(0, 10_000) if e.event == Lifecycle.CONVERTED]


async def test_opens_and_clicks_count_each_message_once_people_apart_from_machines(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}) as h:
        await h.append(
            [
                engaged("ann", Lifecycle.SENT, T - 1, SPRING),
                engaged("bob", Lifecycle.SENT, T - 1, "campaign:spring:bob"),
                engaged("ann", Lifecycle.OPENED, T, SPRING, True, rule="apple-proxy-agent"),
                engaged("ann", Lifecycle.OPENED, T + 60, SPRING),
                engaged("ann", Lifecycle.OPENED, T + 70, SPRING),
                engaged("ann", Lifecycle.CLICKED, T + 2, SPRING, True, rule="too-soon"),
                engaged("ann", Lifecycle.CLICKED, T + 80, SPRING),
                engaged("ann", Lifecycle.CLICKED, T + 90, SPRING),
                engaged("bob", Lifecycle.OPENED, T + 5, "campaign:spring:bob", True),
                engaged("ann", Lifecycle.OPENED, T + 100, WELCOME),
            ]
        )
        await settled(h)
        assert await h.state.engagement("campaign:spring") == {
            "sent": (2, 0.0),
            "machine_opened": (2, 0.0),  # ann's message and bob's
            "opened": (1, 0.0),
            "machine_clicked": (1, 0.0),
            "clicked": (1, 0.0),
        }
        assert await h.state.engagement("journey:welcome") == {"opened": (1, 0.0)}
        # A replay of the same events (the log drops them) and a restart count nothing more.
        await h.append([engaged("ann", Lifecycle.CLICKED, T + 95, SPRING)])
        await settled(h)
        assert (await h.state.engagement("campaign:spring"))["clicked"] == (1, 0.0)
        ann = await h.state.contact("ann")
        assert ann is not None and ann.engaged[SPRING].counted == [
            "machine_opened",
            "opened",
            "machine_clicked",
            "clicked",
        ]


async def test_a_scanners_burst_takes_back_the_click_it_began_with(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}, conversion=ORDER) as h:
        await h.append(
            [
                engaged("ann", Lifecycle.CLICKED, T + 60, SPRING, url="https://a"),
                engaged("ann", Lifecycle.CLICKED, T + 60.4, SPRING, True, rule="burst"),
                engaged("ann", Lifecycle.CLICKED, T + 60.6, SPRING, True, rule="burst"),
                order("ann", T + 120, 1, 50),
            ]
        )
        await settled(h)
        assert await h.state.engagement("campaign:spring") == {"machine_clicked": (1, 0.0)}
        assert await converted(h) == []  # the click it would go to was a scanner's
        ann = await h.state.contact("ann")
        assert ann is not None and ann.last_click is None


async def test_conversions_go_to_the_last_click_by_a_person_within_the_window(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}, conversion=ORDER) as h:
        await h.append(
            [
                order("ann", T - 10, 0, 99),  # before any click
                engaged("ann", Lifecycle.CLICKED, T, SPRING),
                engaged("ann", Lifecycle.CLICKED, T + 10, WELCOME),
                engaged("ann", Lifecycle.CLICKED, T + 20, SPRING, True, rule="scanner-agent"),
                order("ann", T + 100, 1, 30),
                order("ann", T + 200, 2, "12.5"),
                order("ann", T + 300, 3, "a lot"),  # converts, with no revenue
                order("ann", T + 10 + 3601, 4, 1000),  # past the window
                engaged("bob", Lifecycle.CLICKED, T, "campaign:spring:bob", True),
                order("bob", T + 100, 1, 70),  # only a machine clicked
            ]
        )
        await settled(h)
        # Replayed orders (dropped by the log) and our own events never convert twice.
        await h.append([order("ann", T + 100, 1, 30)])
        await settled(h)
        assert await h.state.engagement("journey:welcome") == {
            "clicked": (1, 0.0),
            "converted": (3, 42.5),
        }
        assert "converted" not in await h.state.engagement("campaign:spring")
        events = await converted(h)
        assert [e.properties["conversion_id"] for e in events] == [
            "order-ann-1",
            "order-ann-2",
            "order-ann-3",
        ]
        first = events[0].properties
        assert first["key"] == WELCOME and first["journey"] == "welcome"
        assert (first["revenue"], first["clicked_at"]) == (30.0, T + 10)
        assert all(e.contact_key == "ann" for e in events)


async def test_ab_tests_count_a_persons_opens_and_clicks_only(tmp_path: Path, clock: Clock) -> None:
    campaign = campaign_from_data(
        {
            "id": "sale",
            "template": "welcome",
            "audience": "all",
            "ab_test": {
                "variants": [{"id": "a"}, {"id": "b", "subject": "B"}],
                "test_share": 1,
                "wait": "1h",
                "winner_by": "clicks",
            },
        },
        templates={"welcome"},
        segments=set(),
        now=T,
    )
    async with running(tmp_path, clock, journeys={}) as h:
        await h.state.create_campaign("sale", "sending", msgspec.json.encode(campaign), T)
        await h.append(
            [
                Event(
                    type="identify",
                    message_id=f"id-{user}",
                    contact_key=user,
                    user_id=user,
                    traits={"email": f"{user}@example.com"},
                )
                for user in ("ann", "bob")
            ]
        )
        await h.append(
            [campaign_copy(campaign, u, T, v, tested=True) for u, v in (("ann", "a"), ("bob", "b"))]
        )
        intents = await h.sends(2)
        await h.append([lifecycle_event(Lifecycle.SENT, i, T) for i in intents])
        await h.append(
            [
                engaged("ann", Lifecycle.OPENED, T + 5, "campaign:sale:ann", True),
                engaged("ann", Lifecycle.CLICKED, T + 6, "campaign:sale:ann", True),
                engaged("bob", Lifecycle.OPENED, T + 60, "campaign:sale:bob"),
                engaged("bob", Lifecycle.CLICKED, T + 61, "campaign:sale:bob"),
                engaged(
                    "bob", Lifecycle.CLICKED, T + 61.3, "campaign:sale:bob", True, rule="burst"
                ),
            ]
        )
        await settled(h)
        counts = await h.state.variant_counts("sale")
        assert counts.get(("a", "opens"), 0) == counts.get(("a", "clicks"), 0) == 0
        assert counts[("b", "opens")] == 1
        assert counts.get(("b", "clicks"), 0) == 0  # its click was a scanner's first
