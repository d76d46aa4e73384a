"""Sending a campaign: its audience is read a page of contacts at a time, in id order, and
each recipient's send goes into the log as a copy of the campaign send for that contact.

The log takes it from there like any event: each copy reaches the fold of the partition that
owns its contact, which applies the send policy (address, caps, quiet hours) and queues the
message; delivery is the same as for every other email. The audience is never held whole,
and the runner reads on only while fewer than `AHEAD` messages (and events not yet folded)
wait, so memory stays flat however large the audience, and a pause takes effect within those.

After each page the campaign's cursor (the last contact read) is stored. A crash between the
append and the cursor reads the page again: the copies' message ids derive from campaign and
contact, so the log drops the repeats and nobody gets the campaign twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from mailpulse.campaigns.definition import CAMPAIGN_SEND, SENDING, SENT, Campaign
from mailpulse.store import CampaignRecord, StateStore
from mailpulse.store.interface import EventLog
from mailpulse.types import Contact, Event, EventType

log = logging.getLogger("mailpulse.campaigns")

PAGE = 1000
AHEAD = 5000  # messages waiting for delivery before the runner reads on
IDLE = 0.5  # seconds between looks when there is nothing to do

AppendFn = Callable[[Sequence[Event]], Awaitable[list[Event]]]
_decode = msgspec.json.Decoder(Campaign).decode


def campaign_copy(campaign: Campaign, contact_id: str, now: float) -> Event:
    """The campaign send for one recipient, bound for the fold that owns the contact."""
    return Event(
        type=EventType.TRACK,
        message_id=campaign.key_for(contact_id),
        contact_key=contact_id,
        event=CAMPAIGN_SEND,
        properties={"campaign": campaign.id},
        context={"campaign": campaign.id},
        timestamp=now,
        received_at=now,
        forwarded=True,
    )


def recipients(campaign: Campaign, contacts: Sequence[Contact]) -> list[str]:
    """The contacts of a page in the campaign's audience; those with no address get nothing
    (the fold would only record a suppression for each)."""
    segment = campaign.segment
    return [
        c.id
        for c in contacts
        if c.email is not None and (segment is None or segment in c.segments.members)
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
    ) -> None:
        self._log, self._state, self._append, self._clock = log, state, append, clock
        self._page, self._ahead = page, ahead

    async def run(self) -> None:
        while True:
            if not await self.step():
                await asyncio.sleep(IDLE)

    async def step(self) -> bool:
        """Read one page of one due campaign's audience; whether there was one to read."""
        now = self._clock()
        running = await self._state.running_campaigns()
        due = [r for r in running if _decode(r.body).send_at <= now]
        if not due or await self._waiting() >= self._ahead:
            return False
        await self._read_page(due[0], now)
        return True

    async def _waiting(self) -> int:
        """Messages waiting for delivery, and events not folded yet (each may become one):
        what is in memory on their way."""
        unfolded = 0
        for partition in range(self._log.partitions):
            head = await self._log.head(partition)
            unfolded += max(0, head - await self._state.checkpoint(partition))
        return await self._state.queued_count() + unfolded

    async def _read_page(self, record: CampaignRecord, now: float) -> None:
        campaign = _decode(record.body)
        page = await self._state.contacts_after(record.cursor, self._page)
        copies = [campaign_copy(campaign, cid, now) for cid in recipients(campaign, page)]
        if copies:
            await self._append(copies)
        done = len(page) < self._page
        await self._state.advance_campaign(
            campaign.id,
            cursor=page[-1].id if page else record.cursor,
            appended=len(copies),
            status=SENT if done else SENDING,
            at=now,
        )
        if done:
            log.info(
                "campaign %s: all %d recipients queued", campaign.id, record.appended + len(copies)
            )
