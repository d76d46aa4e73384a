"""Sending a campaign: its audience is read a page of contacts at a time, in id order, and
each recipient's send goes into the log as a copy of the campaign send for that contact.

The log takes it from there like any event: each copy reaches the fold of the partition that
owns its contact, which applies the send policy (address, caps, quiet hours) and queues the
message; delivery is the same as for every other email. The audience is never held whole,
and the runner reads on only while fewer than `AHEAD` messages (and events not yet folded)
wait, so memory stays flat however large the audience, and a pause takes effect within those.
Nor does it read on while the protective breaker holds marketing (see
mailpulse.runtime.breaker): a campaign goes on from its cursor once the breaker is resumed.

After each page the campaign's cursor (the last contact read) is stored. A crash between the
append and the cursor reads the page again: the copies' message ids derive from campaign and
contact, so the log drops the repeats and nobody gets the campaign twice.

An A/B-tested campaign reads its audience twice. The first pass sends the test share their
variants; the campaign is then `testing` until `wait` has passed, when the runner decides on
the counts the folds keep and stores the decision with its numbers; the second pass sends the
rest what the decision says (or the campaign is `awaiting decision` until a person picks).
Each move from one phase to the next is made only from the record it was read as, so a pause,
a cancel or a pick that came meanwhile stands; a crash anywhere resumes in the stored phase,
and a recipient's key is the same in both passes, so nobody gets two variants.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from mailpulse.campaigns.abtest import REST, TEST, WAIT, rest_variant, variant_in_test
from mailpulse.campaigns.decision import Decision, decide, decode_decision
from mailpulse.campaigns.definition import (
    AHEAD,
    AWAITING_DECISION,
    CAMPAIGN_SEND,
    PAGE,
    SENDING,
    SENT,
    TESTING,
    Campaign,
)
from mailpulse.store import CampaignRecord, StateStore
from mailpulse.store.interface import EventLog
from mailpulse.types import Contact, Event, EventType

log = logging.getLogger("mailpulse.campaigns")

IDLE = 0.5  # seconds between looks when there is nothing to do

AppendFn = Callable[[Sequence[Event]], Awaitable[list[Event]]]
_decode = msgspec.json.Decoder(Campaign).decode
_encode = msgspec.json.Encoder().encode


def campaign_copy(
    campaign: Campaign,
    contact_id: str,
    now: float,
    variant: str | None = None,
    *,
    tested: bool = False,
) -> Event:
    """The campaign send for one recipient, bound for the fold that owns the contact: with
    the variant it gets, and whether it is one of the test share (whose figures count)."""
    context: dict[str, object] = {"campaign": campaign.id}
    if variant is not None:
        context["variant"] = variant
    if tested:
        context["tested"] = True
    return Event(
        type=EventType.TRACK,
        message_id=campaign.key_for(contact_id),
        contact_key=contact_id,
        event=CAMPAIGN_SEND,
        properties={"campaign": campaign.id},
        context=context,
        timestamp=now,
        received_at=now,
        forwarded=True,
    )


def recipients(campaign: Campaign, contacts: Sequence[Contact]) -> list[str]:
    """The contacts of a page in the campaign's audience; those with no address get nothing
    (the fold would only record a suppression for each)."""
    segment, listed = campaign.segment, campaign.list
    return [
        c.id
        for c in contacts
        if c.email is not None
        and (segment is None or segment in c.segments.members)
        and (listed is None or listed in c.lists)
    ]


class CampaignRunner:
    def __init__(
        self,
        *,
        log: EventLog,
        state: StateStore,
        append: AppendFn,
        clock: Callable[[], float] = time.time,
        page: int = PAGE,
        ahead: int = AHEAD,
        holding: Callable[[], str | None] | None = None,
    ) -> None:
        """`holding`: why marketing is held now (the protective breaker tripped), or None;
        while it is, no campaign reads further."""
        self._log, self._state, self._append, self._clock = log, state, append, clock
        self._page, self._ahead = page, ahead
        self._holding = holding

    async def run(self) -> None:
        while True:
            if not await self.step():
                await asyncio.sleep(IDLE)

    async def step(self) -> bool:
        """Decide one test whose time has come, or read one page of one due campaign's
        audience; whether there was anything to do."""
        now = self._clock()
        running = [(r, _decode(r.body)) for r in await self._state.running_campaigns()]
        for record, campaign in running:
            if record.status == TESTING and _ready(record, now):
                await self._decide(record, campaign, now)
                return True
        due = [(r, c) for r, c in running if r.status != TESTING and c.send_at <= now]
        if not due or self._held() or await self._waiting() >= self._ahead:
            return False
        await self._read_page(*due[0], now)
        return True

    def _held(self) -> bool:
        return self._holding is not None and self._holding() is not None

    async def _waiting(self) -> int:
        """Messages waiting for delivery, and events not folded yet (each may become one):
        what is in memory on their way."""
        unfolded = 0
        for partition in range(self._log.partitions):
            head = await self._log.head(partition)
            unfolded += max(0, head - await self._state.checkpoint(partition))
        return await self._state.queued_count() + unfolded

    async def _read_page(self, record: CampaignRecord, campaign: Campaign, now: float) -> None:
        page = await self._state.contacts_after(record.cursor, self._page)
        copies = _copies(record, campaign, recipients(campaign, page), now)
        if copies:
            await self._append(copies)
        done = len(page) < self._page
        testing = campaign.ab_test is not None and record.phase in ("", TEST)
        await self._state.advance_campaign(
            campaign.id,
            cursor=page[-1].id if page else record.cursor,
            appended=len(copies),
            status=SENT if done and not testing else SENDING,
            at=now,
        )
        if done and testing:
            await self._end_test_sends(campaign, now)
        elif done:
            log.info(
                "campaign %s: all %d recipients queued", campaign.id, record.appended + len(copies)
            )

    async def _end_test_sends(self, campaign: Campaign, now: float) -> None:
        """The test share has its messages: the test waits, unless a person picked already."""
        assert campaign.ab_test is not None
        record = await self._state.campaign(campaign.id)
        if record is None or record.status != SENDING:
            return  # paused or cancelled meanwhile: a resume reads on from here
        decision = decode_decision(record.decision) if record.decision else None
        if decision is not None and decision.rest:
            await self._go_on(record, decision, now)
            return
        decide_at = now + campaign.ab_test.wait
        await self._state.set_campaign_phase(
            record,
            status=TESTING,
            cursor="",
            phase=WAIT,
            decide_at=decide_at,
            decision=record.decision,
            at=now,
        )
        log.info("campaign %s: test sends queued; decided at %.0f", campaign.id, decide_at)

    async def _decide(self, record: CampaignRecord, campaign: Campaign, now: float) -> None:
        """Decide the test on the counts as they stand (or go on with a person's pick)."""
        assert campaign.ab_test is not None
        decision = decode_decision(record.decision) if record.decision else None
        if decision is None or not decision.rest:
            counts = await self._state.variant_counts(campaign.id)
            decision = decide(campaign.ab_test, counts, now)
            log.info(
                "campaign %s: test decided: winner %s (p %s)",
                campaign.id,
                decision.winner or "undecided",
                decision.p,
            )
        await self._go_on(record, decision, now)

    async def _go_on(self, record: CampaignRecord, decision: Decision, now: float) -> None:
        """The rest of the audience gets what `decision` says; if it says nothing, the
        campaign awaits a person's pick."""
        status, phase = (SENDING, REST) if decision.rest else (AWAITING_DECISION, WAIT)
        await self._state.set_campaign_phase(
            record,
            status=status,
            cursor="",
            phase=phase,
            decide_at=record.decide_at,
            decision=_encode(decision),
            at=now,
        )


def _ready(record: CampaignRecord, now: float) -> bool:
    """Whether a testing campaign is to be decided: its time has come, or a person picked."""
    if record.decision is not None and decode_decision(record.decision).rest:
        return True
    return record.decide_at is not None and record.decide_at <= now


def _copies(
    record: CampaignRecord, campaign: Campaign, contact_ids: Sequence[str], now: float
) -> list[Event]:
    """The copies of one page: to everyone, or in an A/B test's first pass to its test share
    (each their variant), in its second to the rest (what the decision says)."""
    ab_test = campaign.ab_test
    if ab_test is None:
        return [campaign_copy(campaign, cid, now) for cid in contact_ids]
    if record.phase == REST:
        assert record.decision is not None
        rest = decode_decision(record.decision).rest
        return [
            campaign_copy(campaign, cid, now, rest_variant(campaign.id, cid, rest))
            for cid in contact_ids
            if variant_in_test(campaign.id, cid, ab_test) is None
        ]
    copies = []
    for cid in contact_ids:
        variant = variant_in_test(campaign.id, cid, ab_test)
        if variant is not None:
            copies.append(campaign_copy(campaign, cid, now, variant, tested=True))
    return copies
