"""Derived state in PostgreSQL (scale-out): profiles, identities, journey instances, outbox.

The tables of the SQLite store, plus the partition that owns each journey instance, outbox
row and unshipped lifecycle event: the worker folding a partition fires its timers, sends its
mail and ships its lifecycle events, and reads only its own rows. Commits are durable
(synchronous_commit on): unlike a local file, the server can crash apart from the process, and
a lost 'sent' would send a message twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from mailpulse.store.interface import (
    HELD_BY_BREAKER,
    QUOTA_KEPT,
    BreakerRecord,
    CampaignRecord,
    FoldCommit,
    InstanceRecord,
    OutboxRow,
    OutboxUpdate,
    RollupRow,
    rollup_query,
)
from mailpulse.store.postgres.pool import PoolHolder
from mailpulse.store.rows import (
    address_key,
    breaker_from_row,
    consent_from_row,
    consent_params,
    decode_contact,
    decode_event,
    effective_suppressions,
    encode,
    erased_outbox,
    group_instances,
    instance_from_row,
    outbox_from_row,
    outbox_update_params,
    scrubbed_bodies,
    suppression_from_row,
    suppression_params,
    waiting_statuses,
)
from mailpulse.store.sql import load_queries
from mailpulse.types import ConsentRecord, Contact, Event, Suppression, SuppressionReason

Q = load_queries("mailpulse.store.postgres", "state.sql")


async def _many(conn: asyncpg.Connection, query: str, rows: Iterable[Sequence[Any]]) -> None:
    """executemany, skipping the round trip when there is nothing to write."""
    rows = list(rows)
    if rows:
        await conn.executemany(query, rows)


async def _insert_outbox(
    conn: asyncpg.Connection, rows: Sequence[OutboxRow], partition: int
) -> list[str]:
    if not rows:
        return []
    intents = [row.intent for row in rows]
    inserted = await conn.fetch(
        Q["insert-outbox"],
        [it.key for it in intents],
        [partition] * len(rows),
        [it.contact_id for it in intents],
        [row.status for row in rows],
        [row.attempts for row in rows],
        [row.next_attempt_at for row in rows],
        [row.message_id for row in rows],
        [row.last_code for row in rows],
        [row.last_text for row in rows],
        [it.created_at for it in intents],
        [row.updated_at for row in rows],
        [encode(it) for it in intents],
        [address_key(it.email) for it in intents],
    )
    return [r[0] for r in inserted]


async def _keep_lifecycle(
    conn: asyncpg.Connection, events: Sequence[Event], partition: int
) -> None:
    await _many(
        conn, Q["keep-lifecycle"], [(ev.message_id, partition, encode(ev)) for ev in events]
    )


async def _apply(conn: asyncpg.Connection, change: FoldCommit) -> list[str]:
    partition = change.partition
    await _many(conn, Q["upsert-contact"], [(c.id, encode(c)) for c in change.contacts])
    await _many(conn, Q["delete-contact"], [(cid,) for cid in change.deleted_contacts])
    timers = change.segment_timers.items()
    await _many(
        conn,
        Q["set-segment-timer"],
        [(cid, partition, at) for cid, at in timers if at is not None],
    )
    await _many(conn, Q["drop-segment-timer"], [(cid,) for cid, at in timers if at is None])
    # Whatever the batch set for them: a merged or handed-over contact has no timers here.
    gone = [*change.deleted_contacts, *(h.source for h in change.handovers)]
    await _many(conn, Q["drop-segment-timer"], [(cid,) for cid in gone])
    moves = [(dst, src) for src, dst in change.merges.items()]
    await _many(conn, Q["merge-identities"], moves)
    await _many(conn, Q["merge-instances"], [(dst, src, partition) for dst, src in moves])
    await _many(conn, Q["merge-interest"], moves)
    await _many(conn, Q["drop-interest"], [(src,) for _, src in moves])
    await _many(conn, Q["note-interest"], change.interests)
    await _many(conn, Q["add-journey-count"], change.journey_counts)
    await _many(conn, Q["add-variant-count"], change.variant_counts)
    await _many(conn, Q["add-engagement"], change.engagement)
    if change.segment_set is not None:
        await conn.execute(Q["set-segment-set"], partition, change.segment_set)
        await conn.execute(Q["clear-segment-members"], partition)
    await _many(
        conn,
        Q["add-segment-members"],
        [(partition, segment, delta) for segment, delta in change.segment_members.items()],
    )
    await _many(conn, Q["upsert-identity"], list(change.identities.items()))
    await _many(
        conn,
        Q["upsert-instance"],
        [
            (
                i.instance_id,
                partition,
                i.contact_id,
                i.journey_id,
                i.status,
                i.wake_at,
                i.entered_at,
                i.body,
            )
            for i in change.instances
        ],
    )
    handovers = change.handovers
    await _many(conn, Q["merge-identities"], [(h.target, h.source) for h in handovers])
    await _many(conn, Q["hand-over-instances"], [(h.source, h.partition) for h in handovers])
    inserted = await _insert_outbox(conn, change.intents, partition)
    await _keep_lifecycle(conn, change.lifecycle, partition)
    if change.lifted:
        # Every address the batch changes, in one go (in hash order: see lock-addresses).
        hashes = {h for h, _ in change.lifted} | {e.address_hash for e in change.suppressions}
        await conn.execute(Q["lock-addresses"], sorted(hashes))
    await _add_suppressions(conn, change.suppressions)
    await _many(conn, Q["lift-unsubscribe"], change.lifted)
    await _many(conn, Q["add-consent"], [consent_params(r) for r in change.consents])
    await _many(conn, Q["merge-consents"], moves)
    bounces = change.soft_bounces
    await _many(conn, Q["add-soft-bounce"], [(b.address_hash, b.event_id, b.at) for b in bounces])
    await _many(
        conn, Q["forget-soft-bounces"], [(b.address_hash, b.at - b.window) for b in bounces]
    )
    await _many(
        conn,
        Q["add-complaint-counts"],
        [
            (bucket, partition, sends, complaints)
            for bucket, sends, complaints in change.complaint_counts
        ],
    )
    await _many(conn, Q["add-rollup"], [(*row[:5], partition, *row[5:]) for row in change.rollup])
    for contact_id, at in change.erasures.items():
        await _erase(conn, contact_id, at)
    await conn.execute(Q["set-checkpoint"], partition, change.checkpoint)
    return inserted


async def _erase(conn: asyncpg.Connection, contact_id: str, at: float) -> None:
    """What an erased contact leaves in the state, besides its tombstone and identities."""
    ids = [row[0] for row in await conn.fetch(Q["erased-ids"], contact_id)]
    rows = await conn.fetch(Q["erased-outbox"], ids)
    scrubbed = [erased_outbox(key, status, bytes(intent), at) for key, status, intent in rows]
    await _many(conn, Q["scrub-outbox-row"], [params for params in scrubbed if params])
    for forget in ("erase-instances", "erase-interest", "erase-segment-timers", "erase-consents"):
        await conn.execute(Q[forget], ids)
    kept = [(m, bytes(body)) for m, body in await conn.fetch(Q["kept-lifecycle"])]
    await _many(conn, Q["scrub-lifecycle"], scrubbed_bodies(kept, set(ids)))


async def _add_suppressions(
    conn: asyncpg.Connection, entries: Sequence[Suppression]
) -> list[Suppression]:
    """Within the caller's transaction."""
    entries = effective_suppressions(entries)
    if not entries:
        return []
    await conn.execute(Q["lock-addresses"], sorted({e.address_hash for e in entries}))
    erased = [e.address_hash for e in entries if e.reason == SuppressionReason.ERASED]
    if erased:
        await conn.execute(Q["forget-erased-addresses"], erased)
    columns = list(zip(*(suppression_params(e) for e in entries), strict=True))
    took = {(r[0], r[1]) for r in await conn.fetch(Q["add-suppressions"], *map(list, columns))}
    return [e for e in entries if (e.address_hash, e.topic) in took]


def _campaign(row: asyncpg.Record) -> CampaignRecord:
    return CampaignRecord(
        id=row[0],
        status=row[1],
        cursor=row[2],
        appended=row[3],
        body=bytes(row[4]),
        updated_at=row[5],
        phase=row[6] or "",
        decide_at=row[7],
        decision=None if row[8] is None else bytes(row[8]),
    )


class PostgresStateStore:
    def __init__(self, dsn: str, *, pool_size: int = 8, timeout: float = 10.0) -> None:
        self.dsn = dsn  # the catalog's tables are in the same database (see runtime.wiring)
        self._holder = PoolHolder(
            dsn, name="mailpulse-state", size=pool_size, timeout=timeout, what="state"
        )

    async def open(self) -> None:
        await self._holder.open()

    async def close(self) -> None:
        await self._holder.close()

    @property
    def _db(self) -> asyncpg.Pool:
        return self._holder.pool

    async def checkpoint(self, partition: int = 0) -> int:
        offset = await self._db.fetchval(Q["get-checkpoint"], partition)
        return 0 if offset is None else int(offset)

    async def commit(self, change: FoldCommit) -> list[str]:
        async with self._db.acquire() as conn, conn.transaction():
            return await _apply(conn, change)

    async def contact(self, contact_id: str) -> Contact | None:
        body = await self._db.fetchval(Q["get-contact"], contact_id)
        return None if body is None else decode_contact(body)

    async def resolve(self, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        return {key: cid for key, cid in await self._db.fetch(Q["resolve"], list(keys))}

    async def identities_of(self, contact_id: str) -> list[str]:
        return [r[0] for r in await self._db.fetch(Q["identities-of"], contact_id)]

    async def instances_for(self, contact_id: str) -> list[InstanceRecord]:
        rows = await self._db.fetch(Q["instances-for"], contact_id)
        return [instance_from_row(r) for r in rows]

    async def contacts(self, contact_ids: Sequence[str]) -> dict[str, Contact]:
        rows = await self._db.fetch(Q["contacts-in"], list(contact_ids))
        return {cid: decode_contact(body) for cid, body in rows}

    async def instances_of(self, contact_ids: Sequence[str]) -> dict[str, list[InstanceRecord]]:
        rows = await self._db.fetch(Q["instances-in"], list(contact_ids))
        return group_instances(instance_from_row(r) for r in rows)

    async def due_instances(
        self, until: float, limit: int, partition: int = 0
    ) -> list[InstanceRecord]:
        rows = await self._db.fetch(Q["due-instances"], partition, until, limit)
        return [instance_from_row(r) for r in rows]

    async def due_segment_timers(self, until: float, limit: int, partition: int = 0) -> list[str]:
        rows = await self._db.fetch(Q["due-segment-timers"], partition, until, limit)
        return [r[0] for r in rows]

    async def set_journey_control(self, journey_id: str, status: str, at: float) -> None:
        await self._db.execute(Q["set-journey-control"], journey_id, status, at)

    async def journey_controls(self) -> dict[str, str]:
        return {r[0]: r[1] for r in await self._db.fetch(Q["journey-controls"])}

    async def journey_counts(self, journey_id: str) -> list[tuple[str, str, int]]:
        rows = await self._db.fetch(Q["journey-counts"], journey_id)
        return [(r[0], r[1], r[2]) for r in rows]

    async def active_instance_counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._db.fetch(Q["active-instance-counts"])}

    async def segment_set(self, partition: int = 0) -> str | None:
        fingerprint: str | None = await self._db.fetchval(Q["segment-set"], partition)
        return fingerprint

    async def segment_members(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._db.fetch(Q["segment-members"])}

    async def contacts_after(self, after: str, limit: int) -> list[Contact]:
        rows = await self._db.fetch(Q["contacts-after"], after, limit)
        return [decode_contact(r[0]) for r in rows]

    async def identities_after(self, after: str, limit: int) -> list[tuple[str, str]]:
        rows = await self._db.fetch(Q["identities-after"], after, limit)
        return [(r[0], r[1]) for r in rows]

    async def create_campaign(self, campaign_id: str, status: str, body: bytes, at: float) -> bool:
        result = await self._db.execute(Q["create-campaign"], campaign_id, status, body, at)
        return result.endswith(" 1")  # "INSERT 0 1", or "INSERT 0 0" when it existed

    async def campaigns(self) -> list[CampaignRecord]:
        return [_campaign(r) for r in await self._db.fetch(Q["campaigns"])]

    async def running_campaigns(self) -> list[CampaignRecord]:
        return [_campaign(r) for r in await self._db.fetch(Q["running-campaigns"])]

    async def campaign(self, campaign_id: str) -> CampaignRecord | None:
        row = await self._db.fetchrow(Q["campaign"], campaign_id)
        return None if row is None else _campaign(row)

    async def advance_campaign(
        self, campaign_id: str, *, cursor: str, appended: int, status: str, at: float
    ) -> None:
        await self._db.execute(Q["advance-campaign"], cursor, appended, status, at, campaign_id)

    async def set_campaign_status(self, campaign_id: str, status: str, at: float) -> None:
        await self._db.execute(Q["set-campaign-status"], status, at, campaign_id)

    async def set_campaign_phase(
        self,
        expected: CampaignRecord,
        *,
        status: str,
        cursor: str,
        phase: str,
        decide_at: float | None,
        decision: bytes | None,
        at: float,
    ) -> bool:
        async with self._db.acquire() as conn, conn.transaction():
            moved = await conn.execute(
                Q["move-campaign-on"],
                status,
                cursor,
                at,
                expected.id,
                expected.status,
                expected.updated_at,
            )
            if moved.endswith(" 0"):  # "UPDATE 0": it changed since
                return False
            await conn.execute(Q["set-campaign-test"], expected.id, phase, decide_at, decision)
            return True

    async def variant_counts(self, campaign_id: str) -> dict[tuple[str, str], int]:
        rows = await self._db.fetch(Q["variant-counts"], campaign_id)
        return {(variant, figure): count for variant, figure, count in rows}

    async def engagement(self, owner: str) -> dict[str, tuple[int, float]]:
        rows = await self._db.fetch(Q["engagement"], owner)
        return {figure: (count, amount) for figure, count, amount in rows}

    async def rollup(
        self, since: int, until: int, *, by: str = "", key: str | None = None, step: int = 0
    ) -> list[RollupRow]:
        query, keyed = rollup_query(Q, by, key)
        rows = await self._db.fetch(query, since, until, step, *keyed)
        return [RollupRow(*row) for row in rows]

    async def queued_count(self) -> int:
        count: int = await self._db.fetchval(Q["queued-count"])
        return count

    async def campaign_messages(self, campaign_id: str) -> dict[str, int]:
        # Its rows sort together: keys "campaign:<id>:<contact>", up to "campaign:<id>;".
        first, last = f"campaign:{campaign_id}:", f"campaign:{campaign_id};"
        return {r[0]: r[1] for r in await self._db.fetch(Q["outbox-counts-between"], first, last)}

    async def interested(self, object_key: str, since: float) -> list[str]:
        return [r[0] for r in await self._db.fetch(Q["interested"], object_key, since)]

    async def next_wake(self, partition: int = 0) -> float | None:
        wake: float | None = await self._db.fetchval(Q["next-wake"], partition)
        return wake

    async def unshipped_lifecycle(self, limit: int, partition: int = 0) -> list[Event]:
        rows = await self._db.fetch(Q["unshipped-lifecycle"], partition, limit)
        return [decode_event(r[0]) for r in rows]

    async def forget_lifecycle(self, message_ids: Sequence[str]) -> None:
        if message_ids:
            await self._db.execute(Q["forget-lifecycle"], list(message_ids))

    async def save_journey_versions(self, versions: Sequence[tuple[str, str, bytes]]) -> None:
        async with self._db.acquire() as conn:
            await _many(conn, Q["save-journey-version"], versions)

    async def journey_versions(self) -> list[tuple[str, str, bytes]]:
        rows = await self._db.fetch(Q["journey-versions"])
        return [(jid, version, body) for jid, version, body in rows]

    async def outbox_due(
        self, now: float, limit: int, status: str | None = None, partition: int = 0
    ) -> list[OutboxRow]:
        statuses = waiting_statuses(status)
        rows = await self._db.fetch(Q["outbox-due"], partition, statuses, now, limit)
        return [outbox_from_row(r) for r in rows]

    async def outbox_get(self, key: str) -> OutboxRow | None:
        row = await self._db.fetchrow(Q["outbox-get"], key)
        return None if row is None else outbox_from_row(row)

    async def outbox_by_message_id(self, message_id: str) -> OutboxRow | None:
        row = await self._db.fetchrow(Q["outbox-by-message-id"], message_id)
        return None if row is None else outbox_from_row(row)

    async def outbox_queued(self, keys: Sequence[str]) -> set[str]:
        return {r[0] for r in await self._db.fetch(Q["outbox-queued"], list(keys))}

    async def outbox_for_contact(self, contact_ids: Sequence[str], limit: int) -> list[OutboxRow]:
        rows = await self._db.fetch(Q["outbox-for-contact"], list(contact_ids), limit)
        return [outbox_from_row(r) for r in rows]

    async def outbox_for_address(self, address: str, limit: int) -> list[OutboxRow]:
        rows = await self._db.fetch(Q["outbox-for-address"], address_key(address), limit)
        return [outbox_from_row(r) for r in rows]

    async def outbox_update(
        self, updates: Sequence[OutboxUpdate], lifecycle: Sequence[Event] = (), partition: int = 0
    ) -> None:
        params = [outbox_update_params(u) for u in updates]
        async with self._db.acquire() as conn, conn.transaction():
            await _many(conn, Q["update-outbox"], params)
            await _keep_lifecycle(conn, lifecycle, partition)

    async def outbox_counts(self) -> dict[str, int]:
        return {status: n for status, n in await self._db.fetch(Q["outbox-counts"])}

    async def reserve_turns(self, key: str, seconds: float) -> tuple[float, float]:
        """Shaping shared by every worker (a `Timeline`, see mailpulse.delivery.shaping)."""
        start, now = await self._db.fetchrow(Q["reserve-turns"], key, seconds)
        return start, now

    async def take_quota(self, window: str, limit: int, ends_at: float) -> int | None:
        async with self._db.acquire() as conn, conn.transaction():
            used = await conn.fetchval(Q["take-quota"], window, limit, ends_at)
            if used == 1:
                # A window's first send: windows two days gone are no use to anyone.
                await conn.execute(Q["forget-quotas"], ends_at - QUOTA_KEPT)
        return None if used is None else int(used)

    async def return_quota(self, window: str) -> None:
        await self._db.execute(Q["return-quota"], window)

    async def quota_used(self, windows: Sequence[str]) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._db.fetch(Q["quota-used"], list(windows))}

    async def complaint_counts(self, since: float) -> tuple[int, int]:
        sends, complaints = await self._db.fetchrow(Q["complaint-counts"], since)
        return int(sends), int(complaints)

    async def forget_complaint_counts(self, before: float) -> None:
        await self._db.execute(Q["forget-complaint-counts"], before)

    async def breaker(self) -> BreakerRecord:
        return breaker_from_row(await self._db.fetchrow(Q["breaker"]))

    async def set_complaint_alert(self, raised: bool, at: float) -> bool:
        if raised:
            result = await self._db.execute(Q["raise-complaint-alert"], at)
        else:
            result = await self._db.execute(Q["resolve-complaint-alert"])
        return not result.endswith(" 0")  # "UPDATE 0": it was so already

    async def trip_breaker(
        self,
        at: float,
        reason: str,
        *,
        sends: int,
        complaints: int,
        since: float,
        judged_from: float,
    ) -> bool:
        result = await self._db.execute(
            Q["trip-breaker"], at, reason, sends, complaints, since, judged_from
        )
        return not result.endswith(" 0")

    async def resume_breaker(self, at: float, by: str, bucket: float) -> int | None:
        async with self._db.acquire() as conn, conn.transaction():
            if (await conn.execute(Q["resume-breaker"], at, by, bucket)).endswith(" 0"):
                return None
            released = await conn.execute(Q["release-held"], at, HELD_BY_BREAKER)
            return int(released.rpartition(" ")[2])

    async def hold_for_breaker(
        self, keys: Sequence[str], at: float, lifecycle: Sequence[Event] = (), partition: int = 0
    ) -> bool:
        async with self._db.acquire() as conn, conn.transaction():
            if await conn.fetchval(Q["breaker-tripped-at"]) is None:
                return False
            await conn.execute(Q["hold-for-breaker"], HELD_BY_BREAKER, at, list(keys))
            await _keep_lifecycle(conn, lifecycle, partition)
            return True

    async def add_suppressions(self, entries: Sequence[Suppression]) -> list[Suppression]:
        async with self._db.acquire() as conn, conn.transaction():
            return await _add_suppressions(conn, entries)

    async def suppressions_for(self, hashes: Sequence[str]) -> list[Suppression]:
        if not hashes:
            return []
        rows = await self._db.fetch(Q["suppressions-for"], list(hashes))
        return [suppression_from_row(r) for r in rows]

    async def soft_bounces_since(
        self, hashes: Sequence[str], since: float
    ) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        if hashes:
            for row in await self._db.fetch(Q["soft-bounces-since"], list(hashes), since):
                found.setdefault(row[0], []).append(row[1])
        return found

    async def suppressions_after(
        self,
        after: tuple[str, str],
        limit: int,
        *,
        reason: str | None = None,
        topic: str | None = None,
    ) -> list[Suppression]:
        rows = await self._db.fetch(Q["suppressions-after"], *after, reason, topic, limit)
        return [suppression_from_row(r) for r in rows]

    async def remove_suppression(self, address_hash: str, topic: str) -> bool:
        result = await self._db.execute(Q["remove-suppression"], address_hash, topic)
        return not result.endswith(" 0")  # "DELETE 0": none, or an erased one

    async def consents_of(self, contact_id: str, limit: int) -> list[ConsentRecord]:
        rows = await self._db.fetch(Q["consents-of"], contact_id, limit)
        return [consent_from_row(r) for r in reversed(rows)]
