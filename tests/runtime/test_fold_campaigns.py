"""Campaign sends in the fold: the send policy applies, a campaign at a local time holds
each message until the recipient's own clock shows it, and an A/B test's figures count each
contact of its test share once."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from mailpulse.campaigns import campaign_from_data
from mailpulse.campaigns.runner import campaign_copy
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.store import OutboxStatus
from mailpulse.types import Event
from tests.runtime.test_fold import Clock, running

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = NOW
    return clock


def person(n: int, user: str, **traits: object) -> Event:
    return Event(
        type="identify",
        message_id=f"m{n}",
        contact_key=user,
        user_id=user,
        traits={"email": f"{user}@example.com", **traits},
    )


async def test_a_local_time_campaign_holds_each_message_until_the_recipients_clock(
    tmp_path: Path, clock: Clock
) -> None:
    campaign = campaign_from_data(
        {
            "id": "morning",
            "template": "welcome",
            "audience": "all",
            "local_time": "2026-12-01T09:00",
        },
        templates={"welcome"},
        segments=set(),
        now=NOW,
    )
    async with running(tmp_path, clock, journeys={}) as h:
        await h.state.create_campaign("morning", "sending", msgspec.json.encode(campaign), NOW)
        await h.append(
            [
                person(1, "tokyo", timezone="Asia/Tokyo"),
                person(2, "newyork", timezone="America/New_York"),
                person(3, "nozone"),
            ]
        )
        await h.append(
            [campaign_copy(campaign, user, NOW) for user in ("tokyo", "newyork", "nozone")]
        )
        users = ["tokyo", "newyork", "nozone"]
        async with asyncio.timeout(5):
            while len(rows := await h.state.outbox_for_contact(users, 10)) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    held = {row.intent.contact_id: (row.status, row.next_attempt_at) for row in rows}
    nine = {
        user: datetime(2026, 12, 1, 9, 0, tzinfo=ZoneInfo(zone)).timestamp()
        for user, zone in (
            ("tokyo", "Asia/Tokyo"),
            ("newyork", "America/New_York"),
            ("nozone", "UTC"),
        )
    }
    assert held == {user: (OutboxStatus.DEFERRED, at) for user, at in nine.items()}
    assert all(row.intent.campaign == "morning" for row in rows)


def tracked(user: str, name: str, at: float, n: int = 0, **properties: object) -> Event:
    return Event(
        type="track",
        message_id=f"{name}:{user}:{n}",
        contact_key=user,
        user_id=user,
        event=name,
        properties=dict(properties),
        timestamp=at,
        received_at=at,
    )


async def test_an_ab_tests_figures_count_each_contact_once(tmp_path: Path, clock: Clock) -> None:
    """Sent on `Email Sent`, clicks by the message's key, conversions only within their window
    after the send; the same contact again counts nothing more, an unknown one nothing."""
    campaign = campaign_from_data(
        {
            "id": "sale",
            "template": "welcome",
            "audience": "all",
            "ab_test": {
                "variants": [{"id": "a"}, {"id": "b", "template": "other"}],
                "test_share": 1,
                "wait": "1h",
                "winner_by": "conversions",
                "conversion": {"event": "Order Completed", "within": "1h"},
            },
        },
        templates={"welcome", "other"},
        segments=set(),
        now=NOW,
    )
    users = {"ann": "a", "bob": "b", "cat": "b"}
    async with running(tmp_path, clock, journeys={}) as h:
        await h.state.create_campaign("sale", "sending", msgspec.json.encode(campaign), NOW)
        await h.append([person(n, user) for n, user in enumerate(users)])
        await h.append([campaign_copy(campaign, u, NOW, v, tested=True) for u, v in users.items()])
        intents = await h.sends(3)
        assert {i.contact_id: (i.variant, i.template) for i in intents} == {
            "ann": ("a", "welcome"),
            "bob": ("b", "other"),
            "cat": ("b", "other"),
        }
        await h.append([lifecycle_event(Lifecycle.SENT, i, NOW) for i in intents])
        await h.append(
            [
                tracked("ann", "Order Completed", NOW + 60),
                tracked("ann", "Order Completed", NOW + 120, 1),  # ann counted already
                tracked("bob", "Order Completed", NOW + 7200),  # past the window
                tracked("cat", "Order Completed", NOW - 10),  # before the send
                tracked("bob", "Email Clicked", NOW + 5, key="campaign:sale:bob"),
                tracked("bob", "Email Clicked", NOW + 6, 1, key="campaign:sale:bob"),
                tracked("cat", "Email Clicked", NOW + 5, key="campaign:other:cat"),
                tracked("dan", "Email Opened", NOW + 5, campaign="sale"),
            ]
        )
        want = {
            ("a", "sent"): 1,
            ("b", "sent"): 2,
            ("a", "conversions"): 1,
            ("b", "clicks"): 1,
        }
        async with asyncio.timeout(5):
            while await h.state.variant_counts("sale") != want:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        ann = await h.state.contact("ann")
        assert ann is not None and ann.variants["sale"].counted == ["sent", "conversions"]
