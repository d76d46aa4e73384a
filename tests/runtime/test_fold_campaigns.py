"""Campaign sends in the fold: the send policy applies, and a campaign at a local time holds
each message until the recipient's own clock shows it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from mailpulse.campaigns import campaign_from_data
from mailpulse.campaigns.runner import campaign_copy
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
