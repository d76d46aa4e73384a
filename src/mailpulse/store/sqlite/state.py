"""Derived state in a SQLite file: profiles, identities, journey instances, outbox.

synchronous=NORMAL: a commit survives a killed process (the WAL is in the OS), and an OS crash
can only lose the newest batches, which replaying the log from the checkpoint (stored in the
same transaction) derives again with the same idempotency keys.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

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
from mailpulse.store.sqlite.worker import (
    SqliteFile,
    add_column,
    only_partition,
    rows_in,
    select_in,
)
from mailpulse.types import ConsentRecord, Contact, Event, Suppression, SuppressionReason

Q = load_queries("mailpulse.store.sqlite", "state.sql")
_INSTANCE_COLUMNS = (
    "SELECT instance_id, contact_id, journey_id, status, wake_at, entered_at, body"
    " FROM journey_instances"
)


def _apply(conn: sqlite3.Connection, change: FoldCommit) -> list[str]:
    conn.executemany(Q["upsert-contact"], [(c.id, encode(c)) for c in change.contacts])
    conn.executemany(Q["delete-contact"], [(cid,) for cid in change.deleted_contacts])
    timers = change.segment_timers.items()
    conn.executemany(Q["set-segment-timer"], [(c, at) for c, at in timers if at is not None])
    conn.executemany(Q["drop-segment-timer"], [(c,) for c, at in timers if at is None])
    # Whatever the batch set for them: a merged or handed-over contact has no timers here.
    gone = [*change.deleted_contacts, *(h.source for h in change.handovers)]
    conn.executemany(Q["drop-segment-timer"], [(cid,) for cid in gone])
    moves = [(dst, src) for src, dst in change.merges.items()]
    conn.executemany(Q["merge-identities"], moves)
    conn.executemany(Q["merge-instances"], moves)
    conn.executemany(Q["merge-interest"], moves)
    conn.executemany(Q["drop-interest"], [(src,) for _, src in moves])
    conn.executemany(Q["note-interest"], change.interests)
    conn.executemany(Q["add-journey-count"], change.journey_counts)
    conn.executemany(Q["add-variant-count"], change.variant_counts)
    conn.executemany(Q["add-engagement"], change.engagement)
    if change.segment_set is not None:
        conn.execute(Q["set-segment-set"], (change.segment_set,))
        conn.execute(Q["clear-segment-members"])
    conn.executemany(Q["add-segment-members"], list(change.segment_members.items()))
    conn.executemany(Q["upsert-identity"], list(change.identities.items()))
    conn.executemany(
        Q["upsert-instance"],
        [
            (i.instance_id, i.contact_id, i.journey_id, i.status, i.wake_at, i.entered_at, i.body)
            for i in change.instances
        ],
    )
    inserted = []
    for row in change.intents:
        it = row.intent
        cur = conn.execute(
            Q["insert-outbox"],
            (
                it.key,
                it.contact_id,
                row.status,
                row.attempts,
                row.next_attempt_at,
                row.message_id,
                row.last_code,
                row.last_text,
                it.created_at,
                row.updated_at,
                encode(it),
                address_key(it.email),
            ),
        )
        if cur.rowcount:
            inserted.append(it.key)
    conn.executemany(Q["keep-lifecycle"], [(ev.message_id, encode(ev)) for ev in change.lifecycle])
    _add_suppressions(conn, change.suppressions)
    conn.executemany(Q["lift-unsubscribe"], change.lifted)
    conn.executemany(Q["add-consent"], [consent_params(r) for r in change.consents])
    conn.executemany(Q["merge-consents"], moves)
    conn.executemany(
        Q["add-soft-bounce"], [(b.address_hash, b.event_id, b.at) for b in change.soft_bounces]
    )
    conn.executemany(
        Q["forget-soft-bounces"], [(b.address_hash, b.at - b.window) for b in change.soft_bounces]
    )
    conn.executemany(Q["add-complaint-counts"], change.complaint_counts)
    conn.executemany(Q["add-rollup"], change.rollup)
    for contact_id, at in change.erasures.items():
        _erase(conn, contact_id, at)
    conn.execute(Q["set-checkpoint"], (change.checkpoint,))
    return inserted


def _index_addresses(conn: sqlite3.Connection) -> None:
    add_column(conn, "outbox", "address", Q["add-outbox-address"])  # older rows stay unindexed
    conn.execute(Q["outbox-address-index"])


def _erase(conn: sqlite3.Connection, contact_id: str, at: float) -> None:
    """What an erased contact leaves in the state, besides its tombstone and identities."""
    ids = [row[0] for row in conn.execute(Q["erased-ids"], (contact_id,))]
    named = json.dumps(ids)
    rows = conn.execute(Q["erased-outbox"], (named,)).fetchall()
    scrubbed = [erased_outbox(key, status, intent, at) for key, status, intent in rows]
    conn.executemany(Q["scrub-outbox-row"], [params for params in scrubbed if params])
    for forget in ("erase-instances", "erase-interest", "erase-segment-timers", "erase-consents"):
        conn.execute(Q[forget], (named,))
    kept = conn.execute(Q["kept-lifecycle"]).fetchall()
    conn.executemany(Q["scrub-lifecycle"], scrubbed_bodies(kept, set(ids)))


def _add_suppressions(
    conn: sqlite3.Connection, entries: Sequence[Suppression]
) -> list[Suppression]:
    added = []
    for entry in effective_suppressions(entries):
        if entry.reason == SuppressionReason.ERASED:
            conn.execute(Q["forget-erased-address"], (entry.address_hash,))
        if conn.execute(Q["add-suppression"], suppression_params(entry)).fetchone():
            added.append(entry)
    return added


def _hold_for_breaker(
    conn: sqlite3.Connection, params: list[tuple], events: list[tuple[str, bytes]]
) -> bool:
    if conn.execute(Q["breaker"]).fetchone()[1] is None:
        return False
    conn.executemany(Q["hold-for-breaker"], params)
    conn.executemany(Q["keep-lifecycle"], events)
    return True


def _resume_breaker(conn: sqlite3.Connection, at: float, by: str, bucket: float) -> int | None:
    if not conn.execute(Q["resume-breaker"], (at, by, bucket)).rowcount:
        return None
    return conn.execute(Q["release-held"], (at, HELD_BY_BREAKER)).rowcount


def _campaign(row: tuple) -> CampaignRecord:
    return CampaignRecord(
        id=row[0],
        status=row[1],
        cursor=row[2],
        appended=row[3],
        body=row[4],
        updated_at=row[5],
        phase=row[6] or "",
        decide_at=row[7],
        decision=row[8],
    )


def _move_campaign_on(
    conn: sqlite3.Connection,
    expected: CampaignRecord,
    moved: tuple[str, str, float],
    test: tuple[str, float | None, bytes | None],
) -> bool:
    status, cursor, at = moved
    params = (status, cursor, at, expected.id, expected.status, expected.updated_at)
    if not conn.execute(Q["move-campaign-on"], params).rowcount:
        return False
    conn.execute(Q["set-campaign-test"], (expected.id, *test))
    return True


class SqliteStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path  # the catalog's file goes beside it (see mailpulse.runtime.wiring)
        self._db = SqliteFile(path, durable=False, schema=Q["schema"], name="mp-state")
        self._outbox_select = Q["outbox-columns"]

    async def open(self) -> None:
        self._db.open()
        await self._db.write(_index_addresses)

    async def close(self) -> None:
        await self._db.close()

    async def checkpoint(self, partition: int = 0) -> int:
        only_partition(partition)
        row = self._db.read(lambda c: c.execute(Q["get-checkpoint"]).fetchone())
        return row[0] if row else 0

    async def commit(self, change: FoldCommit) -> list[str]:
        only_partition(change.partition)
        for handover in change.handovers:
            only_partition(handover.partition)
        inserted = await self._db.write(lambda c: _apply(c, change))
        if change.erasures:
            self._db.truncate_wal_soon()  # the erased contact's data as it was
        return inserted

    async def contact(self, contact_id: str) -> Contact | None:
        row = self._db.read(lambda c: c.execute(Q["get-contact"], (contact_id,)).fetchone())
        return decode_contact(row[0]) if row else None

    async def resolve(self, keys: Sequence[str]) -> dict[str, str]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        sql = f"SELECT key, contact_id FROM identities WHERE key IN ({marks})"
        rows = self._db.read(lambda c: c.execute(sql, tuple(keys)).fetchall())
        return dict(rows)

    async def identities_of(self, contact_id: str) -> list[str]:
        rows = self._db.read(lambda c: c.execute(Q["identities-of"], (contact_id,)).fetchall())
        return [r[0] for r in rows]

    async def instances_for(self, contact_id: str) -> list[InstanceRecord]:
        rows = self._db.read(lambda c: c.execute(Q["instances-for"], (contact_id,)).fetchall())
        return [instance_from_row(r) for r in rows]

    async def contacts(self, contact_ids: Sequence[str]) -> dict[str, Contact]:
        select = "SELECT id, body FROM contacts WHERE id"
        rows = self._db.read(lambda c: rows_in(c, select, contact_ids))
        return {cid: decode_contact(body) for cid, body in rows}

    async def instances_of(self, contact_ids: Sequence[str]) -> dict[str, list[InstanceRecord]]:
        select = f"{_INSTANCE_COLUMNS} WHERE contact_id"
        rows = self._db.read(lambda c: rows_in(c, select, contact_ids))
        return group_instances(instance_from_row(r) for r in rows)

    async def due_instances(
        self, until: float, limit: int, partition: int = 0
    ) -> list[InstanceRecord]:
        only_partition(partition)
        rows = self._db.read(lambda c: c.execute(Q["due-instances"], (until, limit)).fetchall())
        return [instance_from_row(r) for r in rows]

    async def due_segment_timers(self, until: float, limit: int, partition: int = 0) -> list[str]:
        only_partition(partition)
        query = Q["due-segment-timers"]
        rows = self._db.read(lambda c: c.execute(query, (until, limit)).fetchall())
        return [r[0] for r in rows]

    async def set_journey_control(self, journey_id: str, status: str, at: float) -> None:
        query = Q["set-journey-control"]
        await self._db.write(lambda c: c.execute(query, (journey_id, status, at)))

    async def journey_controls(self) -> dict[str, str]:
        return dict(self._db.read(lambda c: c.execute(Q["journey-controls"]).fetchall()))

    async def journey_counts(self, journey_id: str) -> list[tuple[str, str, int]]:
        query = Q["journey-counts"]
        return self._db.read(lambda c: c.execute(query, (journey_id,)).fetchall())

    async def active_instance_counts(self) -> dict[str, int]:
        return dict(self._db.read(lambda c: c.execute(Q["active-instance-counts"]).fetchall()))

    async def segment_set(self, partition: int = 0) -> str | None:
        only_partition(partition)
        row = self._db.read(lambda c: c.execute(Q["segment-set"]).fetchone())
        return row[0] if row else None

    async def segment_members(self) -> dict[str, int]:
        return dict(self._db.read(lambda c: c.execute(Q["segment-members"]).fetchall()))

    async def contacts_after(self, after: str, limit: int) -> list[Contact]:
        query = Q["contacts-after"]
        rows = self._db.read(lambda c: c.execute(query, (after, limit)).fetchall())
        return [decode_contact(r[0]) for r in rows]

    async def identities_after(self, after: str, limit: int) -> list[tuple[str, str]]:
        query = Q["identities-after"]
        return self._db.read(lambda c: c.execute(query, (after, limit)).fetchall())

    async def create_campaign(self, campaign_id: str, status: str, body: bytes, at: float) -> bool:
        query = Q["create-campaign"]
        rowcount = await self._db.write(
            lambda c: c.execute(query, (campaign_id, status, body, at)).rowcount
        )
        return bool(rowcount)

    async def campaigns(self) -> list[CampaignRecord]:
        rows = self._db.read(lambda c: c.execute(Q["campaigns"]).fetchall())
        return [_campaign(r) for r in rows]

    async def running_campaigns(self) -> list[CampaignRecord]:
        rows = self._db.read(lambda c: c.execute(Q["running-campaigns"]).fetchall())
        return [_campaign(r) for r in rows]

    async def campaign(self, campaign_id: str) -> CampaignRecord | None:
        query = Q["campaign"]
        row = self._db.read(lambda c: c.execute(query, (campaign_id,)).fetchone())
        return None if row is None else _campaign(row)

    async def advance_campaign(
        self, campaign_id: str, *, cursor: str, appended: int, status: str, at: float
    ) -> None:
        params = (cursor, appended, status, at, campaign_id)
        await self._db.write(lambda c: c.execute(Q["advance-campaign"], params))

    async def set_campaign_status(self, campaign_id: str, status: str, at: float) -> None:
        params = (status, at, campaign_id)
        await self._db.write(lambda c: c.execute(Q["set-campaign-status"], params))

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
        moved, test = (status, cursor, at), (phase, decide_at, decision)
        return await self._db.write(lambda c: _move_campaign_on(c, expected, moved, test))

    async def variant_counts(self, campaign_id: str) -> dict[tuple[str, str], int]:
        query = Q["variant-counts"]
        rows = self._db.read(lambda c: c.execute(query, (campaign_id,)).fetchall())
        return {(variant, figure): count for variant, figure, count in rows}

    async def engagement(self, owner: str) -> dict[str, tuple[int, float]]:
        rows = self._db.read(lambda c: c.execute(Q["engagement"], (owner,)).fetchall())
        return {figure: (count, amount) for figure, count, amount in rows}

    async def rollup(
        self, since: int, until: int, *, by: str = "", key: str | None = None, step: int = 0
    ) -> list[RollupRow]:
        query, keyed = rollup_query(Q, by, key)
        params = (since, until, step, *keyed)
        rows = self._db.read(lambda c: c.execute(query, params).fetchall())
        return [RollupRow(*row) for row in rows]

    async def queued_count(self) -> int:
        return int(self._db.read(lambda c: c.execute(Q["queued-count"]).fetchone()[0]))

    async def campaign_messages(self, campaign_id: str) -> dict[str, int]:
        query = Q["campaign-messages"]
        return dict(self._db.read(lambda c: c.execute(query, (campaign_id,)).fetchall()))

    async def interested(self, object_key: str, since: float) -> list[str]:
        query = Q["interested"]
        rows = self._db.read(lambda c: c.execute(query, (object_key, since)).fetchall())
        return [r[0] for r in rows]

    async def next_wake(self, partition: int = 0) -> float | None:
        only_partition(partition)
        return self._db.read(lambda c: c.execute(Q["next-wake"]).fetchone()[0])

    async def unshipped_lifecycle(self, limit: int, partition: int = 0) -> list[Event]:
        only_partition(partition)
        rows = self._db.read(lambda c: c.execute(Q["unshipped-lifecycle"], (limit,)).fetchall())
        return [decode_event(r[0]) for r in rows]

    async def forget_lifecycle(self, message_ids: Sequence[str]) -> None:
        await self._db.write(
            lambda c: c.executemany(Q["forget-lifecycle"], [(m,) for m in message_ids])
        )

    async def save_journey_versions(self, versions: Sequence[tuple[str, str, bytes]]) -> None:
        await self._db.write(lambda c: c.executemany(Q["save-journey-version"], versions))

    async def journey_versions(self) -> list[tuple[str, str, bytes]]:
        return self._db.read(lambda c: c.execute(Q["journey-versions"]).fetchall())

    async def outbox_due(
        self, now: float, limit: int, status: str | None = None, partition: int = 0
    ) -> list[OutboxRow]:
        only_partition(partition)
        # Literal predicates, each that of its status's partial index (see state.sql).
        waiting = " UNION ALL ".join(
            f"{self._outbox_select} WHERE status = '{s}' AND next_attempt_at <= :now"
            for s in waiting_statuses(status)
        )
        sql = f"SELECT * FROM ({waiting}) ORDER BY next_attempt_at LIMIT :limit"
        params = {"now": now, "limit": limit}
        rows = self._db.read(lambda c: c.execute(sql, params).fetchall())
        return [outbox_from_row(r) for r in rows]

    async def outbox_get(self, key: str) -> OutboxRow | None:
        sql = f"{self._outbox_select} WHERE key = ?"
        row = self._db.read(lambda c: c.execute(sql, (key,)).fetchone())
        return outbox_from_row(row) if row else None

    async def outbox_by_message_id(self, message_id: str) -> OutboxRow | None:
        sql = f"{self._outbox_select} WHERE message_id = ? AND message_id <> ''"
        row = self._db.read(lambda c: c.execute(sql, (message_id,)).fetchone())
        return outbox_from_row(row) if row else None

    async def outbox_queued(self, keys: Sequence[str]) -> set[str]:
        select = "SELECT key FROM outbox WHERE status = 'queued' AND key"
        return self._db.read(lambda c: select_in(c, select, keys))

    async def outbox_for_contact(self, contact_ids: Sequence[str], limit: int) -> list[OutboxRow]:
        marks = ",".join("?" * len(contact_ids))
        sql = (
            f"{self._outbox_select} WHERE contact_id IN ({marks}) ORDER BY created_at DESC LIMIT ?"
        )
        rows = self._db.read(lambda c: c.execute(sql, (*contact_ids, limit)).fetchall())
        return [outbox_from_row(r) for r in rows]

    async def outbox_for_address(self, address: str, limit: int) -> list[OutboxRow]:
        sql = f"{self._outbox_select} WHERE address = ? ORDER BY created_at DESC LIMIT ?"
        digest = address_key(address)
        rows = self._db.read(lambda c: c.execute(sql, (digest, limit)).fetchall())
        return [outbox_from_row(r) for r in rows]

    async def outbox_update(
        self, updates: Sequence[OutboxUpdate], lifecycle: Sequence[Event] = (), partition: int = 0
    ) -> None:
        only_partition(partition)
        params = [outbox_update_params(u) for u in updates]
        events = [(ev.message_id, encode(ev)) for ev in lifecycle]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(Q["update-outbox"], params)
            conn.executemany(Q["keep-lifecycle"], events)

        await self._db.write(write)

    async def outbox_counts(self) -> dict[str, int]:
        rows = self._db.read(lambda c: c.execute(Q["outbox-counts"]).fetchall())
        return dict(rows)

    async def take_quota(self, window: str, limit: int, ends_at: float) -> int | None:
        def take(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(Q["take-quota"], (window, limit, ends_at)).fetchone()
            if row is None:
                return None
            if row[0] == 1:
                # A window's first send: windows two days gone are no use to anyone.
                conn.execute(Q["forget-quotas"], (ends_at - QUOTA_KEPT,))
            return int(row[0])

        return await self._db.write(take)

    async def return_quota(self, window: str) -> None:
        await self._db.write(lambda c: c.execute(Q["return-quota"], (window,)))

    async def quota_used(self, windows: Sequence[str]) -> dict[str, int]:
        names = json.dumps(list(windows))
        return dict(self._db.read(lambda c: c.execute(Q["quota-used"], (names,)).fetchall()))

    async def complaint_counts(self, since: float) -> tuple[int, int]:
        row = self._db.read(lambda c: c.execute(Q["complaint-counts"], (since,)).fetchone())
        return int(row[0]), int(row[1])

    async def forget_complaint_counts(self, before: float) -> None:
        await self._db.write(lambda c: c.execute(Q["forget-complaint-counts"], (before,)))

    async def breaker(self) -> BreakerRecord:
        return breaker_from_row(self._db.read(lambda c: c.execute(Q["breaker"]).fetchone()))

    async def set_complaint_alert(self, raised: bool, at: float) -> bool:
        if raised:
            changed = await self._db.write(
                lambda c: c.execute(Q["raise-complaint-alert"], (at,)).rowcount
            )
        else:
            changed = await self._db.write(
                lambda c: c.execute(Q["resolve-complaint-alert"]).rowcount
            )
        return bool(changed)

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
        params = (at, reason, sends, complaints, since, judged_from)
        return bool(await self._db.write(lambda c: c.execute(Q["trip-breaker"], params).rowcount))

    async def resume_breaker(self, at: float, by: str, bucket: float) -> int | None:
        return await self._db.write(lambda c: _resume_breaker(c, at, by, bucket))

    async def hold_for_breaker(
        self, keys: Sequence[str], at: float, lifecycle: Sequence[Event] = (), partition: int = 0
    ) -> bool:
        only_partition(partition)
        params = [(HELD_BY_BREAKER, at, key) for key in keys]
        events = [(ev.message_id, encode(ev)) for ev in lifecycle]
        return await self._db.write(lambda c: _hold_for_breaker(c, params, events))

    async def add_suppressions(self, entries: Sequence[Suppression]) -> list[Suppression]:
        return await self._db.write(lambda c: _add_suppressions(c, entries))

    async def suppressions_for(self, hashes: Sequence[str]) -> list[Suppression]:
        select, wanted = Q["suppression-columns"], list(hashes)

        def read(conn: sqlite3.Connection) -> list[Suppression]:
            found = []
            # In chunks: SQLite binds at most 32,766 parameters to a statement.
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                sql = f"{select} WHERE address_hash IN ({','.join('?' * len(chunk))})"
                found += [suppression_from_row(r) for r in conn.execute(sql, chunk)]
            return found

        return self._db.read(read)

    async def soft_bounces_since(
        self, hashes: Sequence[str], since: float
    ) -> dict[str, list[float]]:
        select, wanted = Q["soft-bounce-columns"], list(hashes)

        def read(conn: sqlite3.Connection) -> dict[str, list[float]]:
            found: dict[str, list[float]] = {}
            for start in range(0, len(wanted), 500):  # SQLite's bound parameters are finite
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"{select} WHERE address_hash IN ({marks}) AND at >= ?"
                for address_hash, at in conn.execute(sql, [*chunk, since]):
                    found.setdefault(address_hash, []).append(at)
            return found

        return self._db.read(read)

    async def suppressions_after(
        self,
        after: tuple[str, str],
        limit: int,
        *,
        reason: str | None = None,
        topic: str | None = None,
    ) -> list[Suppression]:
        params = (*after, reason, topic, limit)
        rows = self._db.read(lambda c: c.execute(Q["suppressions-after"], params).fetchall())
        return [suppression_from_row(r) for r in rows]

    async def remove_suppression(self, address_hash: str, topic: str) -> bool:
        params = (address_hash, topic)
        removed = await self._db.write(
            lambda c: c.execute(Q["remove-suppression"], params).rowcount
        )
        return bool(removed)

    async def consents_of(self, contact_id: str, limit: int) -> list[ConsentRecord]:
        params = (contact_id, limit)
        rows = self._db.read(lambda c: c.execute(Q["consents-of"], params).fetchall())
        return [consent_from_row(r) for r in reversed(rows)]
