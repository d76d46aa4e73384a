"""Suppression in the fold: a bounce whose status says the address is bad adds a hard-bounce
entry in the batch's commit, and the next campaign skips the contact with `Email Suppressed`
naming it; a policy block (5.7.1) adds nothing. An entry added to the store directly (the admin
API's way) blocks the next batch's sends; a global unsubscribe lets transactional mail go."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import msgspec
import pytest

from mailpulse.campaigns import Campaign, campaign_from_data
from mailpulse.campaigns.runner import campaign_copy
from mailpulse.journeys import parse_journey
from mailpulse.policy.suppression import address_hash, entry
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.store import OutboxRow, OutboxStatus
from mailpulse.types import Event, SendIntent
from tests.runtime.test_fold import Clock, Harness, identify, running, track

NOW = 1_795_000_000.0


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = NOW
    return clock


def campaign(campaign_id: str) -> Campaign:
    return campaign_from_data(
        {"id": campaign_id, "template": "welcome", "audience": "all"},
        templates={"welcome"},
        segments=set(),
        now=NOW,
    )


def bounced(user: str, code: int, status: str, text: str) -> Event:
    """The sender's record of a refused first message to `user`."""
    intent = SendIntent(
        key=f"campaign:first:{user}",
        contact_id=user,
        email=f"{user}@example.com",
        template="welcome",
        context={},
        campaign="first",
    )
    return lifecycle_event(
        Lifecycle.BOUNCED,
        intent,
        NOW,
        smtp_code=code,
        smtp_status=status,
        smtp_text=text,
        recipient=f"{user.upper()}@Example.com",
    )


async def send_campaign(h: Harness, campaign_id: str, users: list[str]) -> list[OutboxRow]:
    made = campaign(campaign_id)
    await h.state.create_campaign(campaign_id, "sending", msgspec.json.encode(made), NOW)
    await h.append([campaign_copy(made, user, NOW) for user in users])
    async with asyncio.timeout(5):
        while len(rows := await campaign_rows(h, campaign_id, users)) < len(users):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return rows


async def campaign_rows(h: Harness, campaign_id: str, users: list[str]) -> list[OutboxRow]:
    rows = await h.state.outbox_for_contact(users, 100)
    return [r for r in rows if r.intent.campaign == campaign_id]


async def lifecycle_of(h: Harness, user: str, name: str) -> list[Event]:
    async with asyncio.timeout(5):
        while not (found := [e for e in await h.log.for_contact([user], 100) if e.event == name]):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    return found


async def test_a_bad_address_bounce_suppresses_the_next_campaign(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}) as h:
        await h.append([identify(1, "ann"), identify(2, "bob"), identify(3, "cat")])
        await h.append(
            [
                bounced("ann", 550, "5.1.1", "no such user"),
                bounced("bob", 550, "5.7.1", "blocked by policy"),
                bounced("cat", 552, "5.2.2", "mailbox full"),
            ]
        )
        rows = await send_campaign(h, "second", ["ann", "bob", "cat"])
        status = {r.intent.contact_id: r.status for r in rows}
        assert status == {
            "ann": OutboxStatus.SUPPRESSED,
            "bob": OutboxStatus.QUEUED,
            "cat": OutboxStatus.QUEUED,
        }
        [entry_of_ann] = await h.state.suppressions_for([address_hash("ann@example.com")])
        assert (entry_of_ann.address, entry_of_ann.reason, entry_of_ann.detail) == (
            "ann@example.com",
            "hard_bounce",
            "550 5.1.1 no such user",
        )
        assert entry_of_ann.source == "bounce of campaign:first:ann"
        assert (
            await h.state.suppressions_for(
                [address_hash("bob@example.com"), address_hash("cat@example.com")]
            )
            == []
        )
        [suppressed] = await lifecycle_of(h, "ann", "Email Suppressed")
        assert suppressed.properties["reason"] == (
            "suppressed: hard_bounce (550 5.1.1 no such user) since 2026-11-18T11:06:40Z"
        )
        assert suppressed.properties["campaign"] == "second"
        assert [i.contact_id for i in await h.sends(2)] == ["bob", "cat"]
    registry = h.fold._metrics.registry
    assert (
        registry.get_sample_value("mailpulse_suppressions_added_total", {"reason": "hard_bounce"})
        == 1.0
    )
    assert (
        registry.get_sample_value("mailpulse_sends_blocked_total", {"reason": "hard_bounce"}) == 1.0
    )


async def test_a_bounce_from_outside_adds_nothing(tmp_path: Path, clock: Clock) -> None:
    """An `Email Bounced` sent in by a customer's app (it has a userId) is theirs to track,
    not a fact about our mail: it must not suppress anyone."""
    async with running(tmp_path, clock, journeys={}) as h:
        await h.append([identify(1, "ann")])
        forged = track(2, "ann", "Email Bounced")
        forged.properties = {"smtp_code": 550, "smtp_status": "5.1.1", "recipient": "x@example.com"}
        await h.append([forged])
        [row] = await send_campaign(h, "second", ["ann"])
        assert row.status == OutboxStatus.QUEUED
        assert await h.state.suppressions_for([address_hash("x@example.com")]) == []


RECEIPT = parse_journey(
    textwrap.dedent(
        """\
        trigger: {event: Order Completed}
        entry: always
        message_class: transactional
        steps:
          - send: receipt
        """
    ),
    Path("receipt.yaml"),
)
NEWS = parse_journey(
    textwrap.dedent(
        """\
        trigger: {event: Article Read}
        entry: always
        topic: news
        steps:
          - send: digest
        """
    ),
    Path("news.yaml"),
)


async def test_entries_added_to_the_store_block_the_next_batch(
    tmp_path: Path, clock: Clock
) -> None:
    journeys = {"receipt": RECEIPT, "news": NEWS}
    async with running(tmp_path, clock, journeys=journeys) as h:
        await h.append([identify(1, "ann"), identify(2, "bob")])
        await h.state.add_suppressions(
            [
                entry("ann@example.com", "unsubscribe", source="admin", at=NOW),
                entry("bob@example.com", "manual", topic="news", source="admin", at=NOW),
            ]
        )
        await h.append([track(3, "ann", "Order Completed"), track(4, "ann", "Article Read")])
        await h.append([track(5, "bob", "Order Completed"), track(6, "bob", "Article Read")])
        sent = await h.sends(2)
        assert sorted((i.contact_id, i.template) for i in sent) == [
            ("ann", "receipt"),
            ("bob", "receipt"),
        ]
        for user, reason in (
            ("ann", "suppressed: unsubscribe since"),
            ("bob", "suppressed for topic news: manual since"),
        ):
            [row] = [
                r for r in await h.state.outbox_for_contact([user], 10) if r.intent.topic == "news"
            ]
            assert row.status == OutboxStatus.SUPPRESSED and row.last_text.startswith(reason)
