"""Send policy in the fold, on a controllable clock: quiet hours hold and release, and the
frequency cap counts across journeys."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import datetime, time
from pathlib import Path

from mailpulse.journeys import JourneyDefinition, parse_journey
from mailpulse.policy import FrequencyCap, QuietHours, SendPolicy
from mailpulse.runtime.fold import SENDS
from mailpulse.store import OutboxRow, OutboxStatus
from tests.runtime.test_fold import Clock, Harness, identify, running, track


def journey(
    name: str,
    trigger: str,
    template: str,
    message_class: str = "marketing",
    topic: str = "general",
) -> JourneyDefinition:
    text = f"""\
        trigger: {{event: {trigger}}}
        entry: always
        message_class: {message_class}
        topic: {topic}
        steps:
          - send: {template}
        """
    return parse_journey(textwrap.dedent(text), Path(f"{name}.yaml"))


JOURNEYS = {
    "browse": journey("browse", "Product Viewed", "browse_reminder"),
    "promo": journey("promo", "Promo Started", "promo", topic="promotions"),
    "receipt": journey("receipt", "Order Completed", "receipt", "transactional"),
}


async def outbox(h: Harness, template: str) -> list[OutboxRow]:
    rows = await h.state.outbox_for_contact(["a"], 100)
    return [r for r in rows if r.intent.template == template]


async def test_quiet_hours_hold_marketing_until_they_end(tmp_path: Path) -> None:
    clock = Clock()
    clock.now = datetime.fromisoformat("2026-06-01T23:30:00+00:00").timestamp()
    morning = datetime.fromisoformat("2026-06-02T08:00:00+00:00").timestamp()
    policy = SendPolicy(quiet_hours=QuietHours(time(22), time(8)))
    async with running(tmp_path, clock, journeys=JOURNEYS, policy=policy) as h:
        await h.append([identify(1, "a")])
        await h.append([track(2, "a", "Product Viewed"), track(3, "a", "Order Completed")])
        # The receipt goes at once; the marketing message waits, held, not dropped.
        [receipt] = await h.sends(1)
        assert receipt.template == "receipt"
        await asyncio.sleep(0.2)
        [held] = await outbox(h, "browse_reminder")
        assert (held.status, held.next_attempt_at) == (OutboxStatus.DEFERRED, morning)
        assert "quiet hours" in held.last_text
        assert await h.bus.next_batch(SENDS, 0, 10, 0.3) == []
        # Due in the morning: the sender's retry sweep takes it from the outbox from then on.
        assert await h.state.outbox_due(morning - 1, 10, OutboxStatus.DEFERRED) == []
        [due] = await h.state.outbox_due(morning, 10, OutboxStatus.DEFERRED)
        assert due.intent.template == "browse_reminder"


async def test_the_frequency_cap_counts_across_journeys(tmp_path: Path) -> None:
    clock = Clock()
    policy = SendPolicy(frequency_cap=FrequencyCap(2, 86400))
    async with running(tmp_path, clock, journeys=JOURNEYS, policy=policy) as h:
        await h.append([identify(1, "a")])
        await h.append([track(2, "a", "Product Viewed"), track(3, "a", "Promo Started")])
        assert len(await h.sends(2)) == 2
        clock.now += 3600
        await h.append([track(4, "a", "Product Viewed"), track(5, "a", "Order Completed")])
        [receipt] = await h.sends(1)  # transactional: never capped
        assert receipt.template == "receipt"
        await asyncio.sleep(0.2)
        capped = [r for r in await outbox(h, "browse_reminder") if r.intent.key.endswith("m4:s0")]
        assert capped[0].status == OutboxStatus.SUPPRESSED
        assert "frequency cap" in capped[0].last_text
        # A day after the first two, there is room again.
        clock.now += 86400
        await h.append([track(6, "a", "Promo Started")])
        [again] = await h.sends(1)
        assert again.template == "promo"


async def test_a_topic_cap_counts_only_its_topic(tmp_path: Path) -> None:
    clock = Clock()
    policy = SendPolicy(
        frequency_cap=FrequencyCap(10, 86400),
        topic_caps={"promotions": FrequencyCap(1, 86400)},
    )
    async with running(tmp_path, clock, journeys=JOURNEYS, policy=policy) as h:
        await h.append([identify(1, "a")])
        await h.append([track(2, "a", "Promo Started"), track(3, "a", "Promo Started")])
        [promo] = await h.sends(1)
        assert promo.topic == "promotions"
        # Another topic still goes out: the topic's cap is its own.
        await h.append([track(4, "a", "Product Viewed")])
        [browse] = await h.sends(1)
        assert browse.template == "browse_reminder"
        capped = sorted(await outbox(h, "promo"), key=lambda r: r.intent.key)  # m2, then m3
        assert [r.status for r in capped] == [OutboxStatus.QUEUED, OutboxStatus.SUPPRESSED]
        assert "frequency cap of topic promotions: 1 per 86400s" in capped[1].last_text
