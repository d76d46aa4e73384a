"""The fold counts what the protective breaker judges: marketing messages sent and complaints
about marketing, per bucket of when they were received, in the commit with its checkpoint. Not
transactional mail, nor reports that are no complaint, nor a client's own event of that name."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from mailpulse.policy.breaker import BUCKET
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.types import Event, MessageClass, SendIntent
from tests.runtime.test_fold import Clock, Harness, identify, running, track

T0 = 1_795_000_200.0  # in the bucket that starts at T0 - 200


def message(user: str, n: int, message_class: MessageClass = MessageClass.MARKETING) -> SendIntent:
    return SendIntent(
        key=f"campaign:c:{user}:{n}",
        contact_id=user,
        email=f"{user}@example.com",
        template="welcome",
        context={},
        message_class=message_class,
        campaign="c",
    )


def sent(intent: SendIntent, at: float) -> Event:
    return lifecycle_event(Lifecycle.SENT, intent, at, message_id="<m@shop.test>")


def complained(intent: SendIntent, at: float, feedback_type: str = "abuse") -> Event:
    return lifecycle_event(Lifecycle.COMPLAINED, intent, at, feedback_type=feedback_type)


async def folded(h: Harness) -> None:
    async with asyncio.timeout(5):
        while await h.state.checkpoint() < await h.log.head():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_marketing_sends_and_complaints_are_counted_per_bucket(tmp_path: Path) -> None:
    async with running(tmp_path, Clock(), journeys={}) as h:
        await h.append([identify(1, "ann"), identify(2, "bob")])
        receipt = message("bob", 9, MessageClass.TRANSACTIONAL)
        await h.append(
            [
                *(sent(message("ann", n), T0 + n) for n in range(5)),
                sent(message("bob", 1), T0 + BUCKET),  # the next bucket
                sent(receipt, T0),
                complained(message("ann", 0), T0 + 10),
                complained(message("bob", 1), T0 + BUCKET + 10, feedback_type="fraud"),
                complained(receipt, T0 + 20),  # about a receipt: not the marketing rate's
                complained(message("ann", 1), T0 + 30, feedback_type="opt-out"),  # unsubscribe
                complained(message("ann", 2), T0 + 40, feedback_type="not-spam"),
                # A client's own event of that name says nothing about our mail.
                msgspec.structs.replace(
                    track(3, "ann", "Email Complained"),
                    properties={"message_class": "marketing"},
                    received_at=T0,
                ),
            ]
        )
        await folded(h)
        assert await h.state.complaint_counts(T0 - 200) == (6, 2)
        assert await h.state.complaint_counts(T0 - 200 + BUCKET) == (1, 1)


async def test_a_restart_counts_nothing_again(tmp_path: Path) -> None:
    async with running(tmp_path, Clock(), journeys={}) as h:
        await h.append([identify(1, "ann"), sent(message("ann", 1), T0)])
        await h.append([complained(message("ann", 1), T0 + 5)])
        await folded(h)
    async with running(tmp_path, Clock(), journeys={}) as h:
        # The same events again (a shipper's retry after a crash): the log drops them.
        await h.append([sent(message("ann", 1), T0), complained(message("ann", 1), T0 + 5)])
        await h.append([sent(message("ann", 2), T0 + 6)])
        await folded(h)
        assert await h.state.complaint_counts(0.0) == (2, 1)
