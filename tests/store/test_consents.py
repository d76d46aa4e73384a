"""Consent records and resubscribes in the state store, on both stores: records are kept once
per id and read back per contact oldest first, follow a merged contact to its survivor, and a
lift removes an unsubscribe entry and never an entry of another reason."""

from __future__ import annotations

from mailpulse.policy.suppression import address_hash, entry
from mailpulse.store import FoldCommit
from mailpulse.types import ConsentRecord
from tests.store.conftest import StateFactory


def record(record_id: str, contact: str, at: float, action: str = "granted") -> ConsentRecord:
    return ConsentRecord(
        id=record_id,
        contact_id=contact,
        address=f"{contact}@example.com",
        topic="news",
        action=action,
        source="api",
        at=at,
        ip="203.0.113.9",
        user_agent="Mozilla/5.0 'quoted' \"too\"",
        wording="Yes, send me the weekly letter",
    )


async def test_records_are_kept_once_and_read_oldest_first(open_state: StateFactory) -> None:
    state = await open_state()
    first, second = record("e1", "ann", 10.0), record("e2", "ann", 20.0, "withdrawn")
    await state.commit(FoldCommit(checkpoint=1, consents=[second, first, record("e3", "bo", 5.0)]))
    # A replay of the batch (after a crash) records nothing twice.
    await state.commit(FoldCommit(checkpoint=1, consents=[first]))
    assert await state.consents_of("ann", 100) == [first, second]
    assert await state.consents_of("ann", 1) == [second]  # the latest, when limited
    assert await state.consents_of("nobody", 100) == []


async def test_a_merged_contacts_records_move_to_the_survivor(open_state: StateFactory) -> None:
    state = await open_state()
    early = record("e1", "anon-1", 10.0)
    await state.commit(FoldCommit(checkpoint=1, consents=[early]))
    # Merged in the same batch as a record of its own: both end up with the survivor.
    late = record("e2", "anon-1", 11.0)
    await state.commit(FoldCommit(checkpoint=2, consents=[late], merges={"anon-1": "ann"}))
    assert [r.id for r in await state.consents_of("ann", 10)] == ["e1", "e2"]
    assert await state.consents_of("anon-1", 10) == []


async def test_a_lift_removes_only_an_unsubscribe(open_state: StateFactory) -> None:
    state = await open_state()
    ann, bo = "ann@example.com", "bo@example.com"
    await state.add_suppressions(
        [
            entry(ann, "unsubscribe", topic="news", at=1.0),
            entry(ann, "unsubscribe", at=1.0),
            entry(bo, "hard_bounce", at=1.0),
            entry(bo, "manual", topic="news", at=1.0),
        ]
    )
    lifted = [(address_hash(a), t) for a in (ann, bo) for t in ("", "news")]
    await state.commit(FoldCommit(checkpoint=1, lifted=lifted))
    assert await state.suppressions_for([address_hash(ann)]) == []
    remaining = await state.suppressions_for([address_hash(bo)])
    assert sorted((e.topic, e.reason) for e in remaining) == [
        ("", "hard_bounce"),
        ("news", "manual"),
    ]


async def test_entries_are_added_before_lifts(open_state: StateFactory) -> None:
    """A batch whose resubscribe came after a bounce of the same address: the bounce stands."""
    state = await open_state()
    ann = "ann@example.com"
    await state.add_suppressions([entry(ann, "unsubscribe", at=1.0)])
    bounce = entry(ann, "hard_bounce", detail="550 5.1.1", at=2.0)
    await state.commit(
        FoldCommit(checkpoint=1, suppressions=[bounce], lifted=[(address_hash(ann), "")])
    )
    assert await state.suppressions_for([address_hash(ann)]) == [bounce]
