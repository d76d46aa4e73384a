"""The memberships of a new or changed segment set, computed from the whole history at once.

A fold that starts with a segment set other than the one its partition's memberships follow
computes every state again before it folds anything: the contacts it owns, and every event
they ever did, read from the log up to each partition's checkpoint (what the folds have
applied; what comes after, the live fold applies as usual). Each event counts once, under the
contact its key belongs to now: copies that folds send each other are skipped, except the
copies an object's event fans out, which no other event stands for. The states are written
in batches, the last with the set's fingerprint, so a crash midway computes them again.

A backfill is silent: it appends no `Segment Entered`, so a new segment does not start its
journeys for everyone already in it; they start on the changes that follow.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

import msgspec

from mailpulse.audience.lists import members_key
from mailpulse.audience.segments import SegmentSet
from mailpulse.bus import partition_of
from mailpulse.journeys import is_audience
from mailpulse.store import FoldCommit, StateStore
from mailpulse.store.interface import EventLog
from mailpulse.types import Contact, Event, EventType

log = logging.getLogger("mailpulse.segments")

PAGE = 20_000
WRITE_BATCH = 5_000


def _counted(event: Event) -> bool:
    """Whether the event is an original a segment may count, not a fold's copy of one."""
    if event.type != EventType.TRACK:
        return False
    return not event.plumbing or "fan_out" in event.context


class SegmentBackfill:
    def __init__(
        self,
        *,
        log: EventLog,
        state: StateStore,
        segments: SegmentSet,
        partition: int,
        clock: Callable[[], float],
    ) -> None:
        self._log, self._state, self._segments = log, state, segments
        self._partition = partition
        self._clock = clock

    def _mine(self, contact_id: str) -> bool:
        partitions = self._log.partitions
        return partitions == 1 or partition_of(contact_id, partitions) == self._partition

    async def needed(self) -> bool:
        return await self._state.segment_set(self._partition) != self._segments.fingerprint

    async def run(self) -> None:
        t0 = time.perf_counter()
        contacts = await self._contacts()
        # A first start has nobody to compute, and numpy stays unloaded (12 MB of memory).
        events = await self._compute(contacts) if contacts else 0
        await self._write(contacts)
        log.info(
            "segments computed from the history: %d contacts, %d events, %d segments, %.1f s",
            len(contacts),
            events,
            len(self._segments),
            time.perf_counter() - t0,
        )

    async def _compute(self, contacts: list[Contact]) -> int:
        """Sets each contact's segment state from its history; the number of events read."""
        from mailpulse.audience.segments.backfill import HistoryBuilder, backfill

        owner = await self._identities()
        builder = HistoryBuilder(self._segments, [c.id for c in contacts])
        mine = {c.id for c in contacts}
        events = 0
        for partition in range(self._log.partitions):
            upto = await self._state.checkpoint(partition)
            after = 0
            while after < upto:
                page = await self._log.read(after, min(PAGE, upto - after), partition)
                if not page:
                    break
                after = page[-1].offset
                kept = []
                for event in page:
                    if not _counted(event):
                        continue
                    cid = owner.get(event.contact_key, event.contact_key)
                    if cid not in mine:
                        continue
                    if cid != event.contact_key:
                        event = msgspec.structs.replace(event, contact_key=cid)
                    kept.append(event)
                builder.add(kept)
                events += len(kept)
        states = backfill(self._segments, contacts, builder.build(), self._clock()).states()
        for contact, segment_state in zip(contacts, states, strict=True):
            contact.segments = segment_state
        return events

    async def _contacts(self) -> list[Contact]:
        contacts: list[Contact] = []
        after = ""
        while page := await self._state.contacts_after(after, PAGE):
            # An erased contact is in no segment, whatever its (scrubbed) history says.
            contacts += [c for c in page if self._mine(c.id) and not c.erased_at]
            after = page[-1].id
        return contacts

    async def _identities(self) -> dict[str, str]:
        """Identity → the contact it belongs to now (a merge re-points them all)."""
        owner: dict[str, str] = {}
        after = ""
        while page := await self._state.identities_after(after, PAGE):
            owner.update(page)
            after = page[-1][0]
        return owner

    async def _write(self, contacts: list[Contact]) -> None:
        checkpoint = await self._state.checkpoint(self._partition)
        members = Counter(
            segment
            for contact in contacts
            for segment in filter(is_audience, contact.segments.members)
        )
        # Lists are counted beside segments, and the counts are set afresh below.
        members.update(members_key(name) for contact in contacts for name in contact.lists)
        for start in range(0, max(len(contacts), 1), WRITE_BATCH):
            batch = contacts[start : start + WRITE_BATCH]
            last = start + WRITE_BATCH >= len(contacts)
            await self._state.commit(
                FoldCommit(
                    checkpoint=checkpoint,
                    partition=self._partition,
                    contacts=batch,
                    segment_timers={c.id: self._segments.next_change_at(c.segments) for c in batch},
                    # The last batch sets the partition's counts afresh, with the set.
                    segment_set=self._segments.fingerprint if last else None,
                    segment_members=dict(members) if last else {},
                )
            )
