"""Bounces and complaints from the inbound listener in the fold: a DSN's hard bounce
suppresses at once whatever reply code it gives; soft bounces are counted per address and
suppress (soft_bounce) once [policy] soft_bounce_limit of them fall within its period, counted
durably across a restart and once per event; older ones do not count; a complaint adds a
complaint entry, an opt-out an unsubscribe; the same events sent in by a client change
nothing."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from mailpulse.policy import FrequencyCap, SendPolicy
from mailpulse.policy.suppression import address_hash
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.store import OutboxStatus
from mailpulse.types import Event, SendIntent
from tests.runtime.test_fold import Clock, identify, running, track
from tests.runtime.test_fold_suppression import NOW, send_campaign

DAY = 86400.0
LIMIT = SendPolicy(soft_bounce_limit=FrequencyCap(3, 7 * DAY))


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = NOW
    return clock


def feedback(kind: Lifecycle, user: str, n: int, at: float = NOW, **properties: object) -> Event:
    """What the inbound listener appends about `user`'s message of campaign `c<n>`."""
    send = SendIntent(
        key=f"campaign:c{n}:{user}",
        contact_id=user,
        email=f"{user}@example.com",
        template="welcome",
        context={},
        campaign=f"c{n}",
    )
    made = lifecycle_event(kind, send, at, recipient=send.email, source="dsn", **properties)
    return msgspec.structs.replace(made, message_id=f"{made.message_id}:dsn:{n}")


def soft(user: str, n: int, at: float = NOW) -> Event:
    return feedback(
        Lifecycle.BOUNCED,
        user,
        n,
        at,
        bounce="soft",
        smtp_status="5.2.2",
        smtp_code=552,
        smtp_text="mailbox full",
    )


async def entries(h, user: str) -> list[tuple[str, str]]:
    found = await h.state.suppressions_for([address_hash(f"{user}@example.com")])
    return [(e.reason, e.detail) for e in found]


async def test_a_dsns_hard_bounce_suppresses_without_a_reply_code(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}, policy=LIMIT) as h:
        await h.append([identify(1, "ann")])
        await h.append([feedback(Lifecycle.BOUNCED, "ann", 1, bounce="hard", smtp_status="5.1.1")])
        [row] = await send_campaign(h, "next", ["ann"])
        assert row.status == OutboxStatus.SUPPRESSED and "hard_bounce (5.1.1)" in row.last_text


async def test_soft_bounces_suppress_at_the_limit_counted_across_a_restart(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}, policy=LIMIT) as h:
        await h.append([identify(1, "ann"), identify(2, "bob")])
        await h.append([soft("ann", 1), soft("ann", 2)])
        # The same report again (a remote server retrying it) is the same event: once.
        await h.append([soft("ann", 2)])
        rows = await send_campaign(h, "between", ["ann", "bob"])
        assert {r.status for r in rows} == {OutboxStatus.QUEUED}
        assert await entries(h, "ann") == []
    async with running(tmp_path, clock, journeys={}, policy=LIMIT) as h:
        await h.append([soft("ann", 3)])
        rows = await send_campaign(h, "after", ["ann", "bob"])
        status = {r.intent.contact_id: r.status for r in rows}
        assert status == {"ann": OutboxStatus.SUPPRESSED, "bob": OutboxStatus.QUEUED}
        assert await entries(h, "ann") == [
            ("soft_bounce", "soft bounces reached 3/1w, the last: 552 5.2.2 mailbox full")
        ]


async def test_soft_bounces_older_than_the_period_do_not_count(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}, policy=LIMIT) as h:
        await h.append([identify(1, "ann")])
        await h.append([soft("ann", 1, NOW - 9 * DAY), soft("ann", 2, NOW - 8 * DAY)])
        await h.append([soft("ann", 3), soft("ann", 4)])
        [row] = await send_campaign(h, "next", ["ann"])
        assert row.status == OutboxStatus.QUEUED
        assert await entries(h, "ann") == []


@pytest.mark.parametrize(
    ("feedback_type", "reason"),
    [("abuse", "complaint"), ("opt-out", "unsubscribe"), ("auth-failure", None)],
)
async def test_a_complaint_adds_what_its_feedback_type_calls_for(
    tmp_path: Path, clock: Clock, feedback_type: str, reason: str | None
) -> None:
    async with running(tmp_path, clock, journeys={}, policy=LIMIT) as h:
        await h.append([identify(1, "ann")])
        complaint = feedback(Lifecycle.COMPLAINED, "ann", 1, feedback_type=feedback_type)
        await h.append([complaint])
        [row] = await send_campaign(h, "next", ["ann"])
        assert (row.status == OutboxStatus.SUPPRESSED) is (reason is not None)
        assert [r for r, _ in await entries(h, "ann")] == ([reason] if reason else [])


async def test_bounces_and_complaints_sent_in_by_a_client_change_nothing(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}, policy=LIMIT) as h:
        await h.append([identify(1, "ann")])
        forged = []
        for n, (name, properties) in enumerate(
            [
                ("Email Complained", {"feedback_type": "abuse", "recipient": "ann@example.com"}),
                ("Email Bounced", {"bounce": "hard", "recipient": "ann@example.com"}),
            ]
        ):
            event = track(10 + n, "ann", name)
            event.properties = properties
            forged.append(event)
        await h.append(forged)
        [row] = await send_campaign(h, "next", ["ann"])
        assert row.status == OutboxStatus.QUEUED
        assert await entries(h, "ann") == []
