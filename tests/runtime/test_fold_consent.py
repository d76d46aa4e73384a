"""Subscriptions in the fold: an `Unsubscribed` becomes an unsubscribe entry in its batch's
commit (a topic's or global) and blocks the next marketing of its scope while receipts go; a
`Subscribed` lifts it, and only it; consent records are stored; an opt-in topic's marketing
waits for consent, a double opt-in topic's for the confirmation its `Subscribed` mails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailpulse.journeys import parse_journey
from mailpulse.policy import SendPolicy
from mailpulse.policy.consent import CONFIRMED, subscribed_event, unsubscribed_event
from mailpulse.policy.suppression import address_hash, entry
from mailpulse.policy.topics import Topic
from mailpulse.store import OutboxRow, OutboxStatus
from mailpulse.types import Event
from tests.runtime.test_fold import Clock, Harness, identify, running, track

NOW = 1_795_000_000.0
TOPICS = {
    "offers": Topic(id="offers", name="Offers"),
    "vip": Topic(id="vip", name="VIP", opt_in=True),
    "news": Topic(id="news", name="News", opt_in=True, double_opt_in=True),
}
POLICY = SendPolicy(topics=TOPICS)


def journey(name: str, trigger: str, topic: str | None, message_class: str = "marketing"):
    lines = [f"trigger: {{event: {trigger}}}", "entry: always", f"message_class: {message_class}"]
    if topic:
        lines.append(f"topic: {topic}")
    lines += ["steps:", f"  - send: {name}"]
    return parse_journey("\n".join(lines) + "\n", Path(f"{name}.yaml"))


JOURNEYS = {
    "offer": journey("offer", "Offer", "offers"),
    "vip": journey("vip", "Vip", "vip"),
    "news": journey("news", "News", "news"),
    "general": journey("general", "General", None),
    "receipt": journey("receipt", "Order Completed", None, "transactional"),
}


@pytest.fixture
def clock() -> Clock:
    clock = Clock()
    clock.now = NOW
    return clock


def customer(n: int, name: str, **properties: object) -> Event:
    ev = track(n, "ann", name)
    ev.properties = dict(properties)
    ev.context = {"ip": "198.51.100.7", "userAgent": "Firefox"}
    ev.timestamp = ev.received_at = NOW + n
    return ev


async def row_of(h: Harness, cause: str) -> OutboxRow:
    """Ann's outbox row of the message the event `cause` (a message id, or for a confirmation
    its template) made, once there."""
    async with asyncio.timeout(5):
        while True:
            for row in await h.state.outbox_for_contact(["ann"], 100):
                trigger = row.intent.context.get("event", {}).get("message_id")
                if cause in (trigger, row.intent.template):
                    return row
            await asyncio.sleep(0.02)


async def test_unsubscribes_suppress_their_scope_and_resubscribes_lift_them(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys=JOURNEYS, policy=POLICY) as h:
        await h.append([identify(1, "ann")])
        await h.append(
            [
                unsubscribed_event(
                    "ann", "ann@example.com", "offers", source="one_click", at=NOW + 2, key="k1"
                ),
                track(3, "ann", "Offer"),
                track(4, "ann", "General"),
            ]
        )
        assert (await row_of(h, "m3")).status == OutboxStatus.SUPPRESSED
        assert "for topic offers: unsubscribe" in (await row_of(h, "m3")).last_text
        assert (await row_of(h, "m4")).status == OutboxStatus.QUEUED
        [stored] = await h.state.suppressions_for([address_hash("ann@example.com")])
        assert (stored.topic, stored.reason, stored.source) == (
            "offers",
            "unsubscribe",
            "one_click",
        )
        # All marketing, then: receipts still go.
        await h.append(
            [
                unsubscribed_event("ann", "ann@example.com", "", source="one_click", at=NOW + 5),
                track(5, "ann", "General"),
                track(6, "ann", "Order Completed"),
            ]
        )
        assert (await row_of(h, "m5")).status == OutboxStatus.SUPPRESSED
        assert (await row_of(h, "m6")).status == OutboxStatus.QUEUED
        # Resubscribed to all marketing and to offers: both go again.
        await h.append(
            [
                subscribed_event(
                    "ann",
                    "ann@example.com",
                    "",
                    action="granted",
                    source="preference_center",
                    at=NOW + 6,
                ),
                customer(7, "Subscribed", topic="offers"),
                track(8, "ann", "Offer"),
                track(9, "ann", "General"),
            ]
        )
        assert (await row_of(h, "m8")).status == OutboxStatus.QUEUED
        assert (await row_of(h, "m9")).status == OutboxStatus.QUEUED
        assert await h.state.suppressions_for([address_hash("ann@example.com")]) == []
        records = await h.state.consents_of("ann", 10)
        assert [(r.topic, r.action, r.source) for r in records] == [
            ("offers", "withdrawn", "one_click"),
            ("", "withdrawn", "one_click"),
            ("", "granted", "preference_center"),
            ("offers", "granted", "api"),
        ]
        assert (records[-1].ip, records[-1].user_agent) == ("198.51.100.7", "Firefox")


async def test_a_resubscribe_never_lifts_a_stronger_entry(tmp_path: Path, clock: Clock) -> None:
    async with running(tmp_path, clock, journeys=JOURNEYS, policy=POLICY) as h:
        await h.append([identify(1, "ann")])
        await h.state.add_suppressions([entry("ann@example.com", "complaint", at=NOW)])
        await h.append([customer(2, "Subscribed"), track(3, "ann", "General")])
        row = await row_of(h, "m3")
        assert row.status == OutboxStatus.SUPPRESSED and "complaint" in row.last_text
        [standing] = await h.state.suppressions_for([address_hash("ann@example.com")])
        assert standing.reason == "complaint"


async def test_an_opt_in_topic_waits_for_consent(tmp_path: Path, clock: Clock) -> None:
    async with running(tmp_path, clock, journeys=JOURNEYS, policy=POLICY) as h:
        await h.append([identify(1, "ann"), track(2, "ann", "Vip")])
        row = await row_of(h, "m2")
        assert row.status == OutboxStatus.SUPPRESSED
        assert row.last_text == "topic vip is opt-in and the contact has not consented"
        # Consent and the message it triggers in one batch: the consent comes first.
        await h.append(
            [
                customer(3, "Subscribed", topic="vip", wording="VIP deals, yes"),
                track(4, "ann", "Vip"),
            ]
        )
        assert (await row_of(h, "m4")).status == OutboxStatus.QUEUED
        contact = await h.state.contact("ann")
        assert contact is not None and contact.consent == {"vip": "granted"}


async def test_double_opt_in_mails_a_confirmation_and_flows_once_confirmed(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys=JOURNEYS, policy=POLICY) as h:
        await h.append([identify(1, "ann")])
        asking = customer(2, "Subscribed", topic="news", wording="The weekly news")
        await h.append([asking, track(3, "ann", "News")])
        confirmation = await row_of(h, "confirm_subscription")
        assert confirmation.status == OutboxStatus.QUEUED
        assert confirmation.intent.key == f"confirm:news:{asking.message_id}"
        assert confirmation.intent.message_class == "transactional"
        assert confirmation.intent.context["topic"]["name"] == "News"
        pending = await row_of(h, "m3")
        assert pending.status == OutboxStatus.SUPPRESSED and "awaits" in pending.last_text
        await h.append(
            [
                subscribed_event(
                    "ann",
                    "ann@example.com",
                    "news",
                    action=CONFIRMED,
                    source="double_opt_in",
                    at=NOW + 4,
                ),
                track(5, "ann", "News"),
            ]
        )
        assert (await row_of(h, "m5")).status == OutboxStatus.QUEUED
        actions = [(r.action, r.source) for r in await h.state.consents_of("ann", 10)]
        assert actions == [("granted", "api"), ("confirmed", "double_opt_in")]
        # Asking again once confirmed mails nothing more.
        await h.append([customer(6, "Subscribed", topic="news")])
        await asyncio.sleep(0.2)
        rows = await h.state.outbox_for_contact(["ann"], 100)
        assert sum(r.intent.template == "confirm_subscription" for r in rows) == 1
