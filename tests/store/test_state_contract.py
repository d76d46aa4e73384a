"""Derived state: one fold batch commits atomically with its checkpoint; outbox is unique."""

from __future__ import annotations

import pytest

from mailpulse.store import FoldCommit, InstanceRecord, OutboxRow, OutboxStatus, OutboxUpdate
from mailpulse.types import Contact, Event, SendIntent
from tests.store.conftest import StateFactory


def intent(key: str, contact: str = "u1") -> OutboxRow:
    return OutboxRow(
        intent=SendIntent(
            key=key,
            contact_id=contact,
            email=f"{contact}@example.com",
            template="t",
            context={"big": 2**70},
            created_at=10.0,
        ),
        status=OutboxStatus.QUEUED,
        next_attempt_at=10.0,
        updated_at=10.0,
    )


def update(
    key: str,
    status: str,
    *,
    code: int,
    next_at: float,
    message_id: str = "",
    text: str = "",
    updated_at: float = 11.0,
) -> OutboxUpdate:
    """A first attempt's outcome."""
    return OutboxUpdate(
        key=key,
        status=status,
        attempts=1,
        next_attempt_at=next_at,
        message_id=message_id,
        last_code=code,
        last_text=text,
        updated_at=updated_at,
    )


def instance(
    iid: str,
    wake_at: float | None,
    status: str = "active",
    *,
    contact: str = "u1",
    journey: str = "j",
    entered_at: float = 1.0,
) -> InstanceRecord:
    return InstanceRecord(
        instance_id=iid,
        contact_id=contact,
        journey_id=journey,
        status=status,
        wake_at=wake_at,
        entered_at=entered_at,
        body=b'{"x":1}',
    )


async def test_a_fold_commit_lands_whole(open_state: StateFactory) -> None:
    state = await open_state()
    assert await state.checkpoint() == 0
    inserted = await state.commit(
        FoldCommit(
            checkpoint=7,
            contacts=[Contact(id="u1", traits={"plan": "pro"}, email="u1@example.com")],
            identities={"u1": "u1", "anon": "u1"},
            instances=[
                instance("i1", 50.0),
                instance("i2", 20.0),
                instance("i3", None, "completed"),
            ],
            intents=[intent("k1"), intent("k2")],
        )
    )
    assert sorted(inserted) == ["k1", "k2"]
    assert await state.checkpoint() == 7
    contact = await state.contact("u1")
    assert contact is not None and contact.traits == {"plan": "pro"}
    assert await state.resolve(["anon", "nobody"]) == {"anon": "u1"}
    assert await state.identities_of("u1") == ["anon", "u1"]
    assert [i.instance_id for i in await state.instances_for("u1")] == ["i1", "i2", "i3"]
    assert [i.instance_id for i in await state.due_instances(30.0, 10)] == ["i2"]
    assert await state.next_wake() == 20.0
    row = await state.outbox_get("k1")
    assert row is not None and row.intent.context == {"big": 2**70}


async def test_refolding_inserts_no_second_intent(open_state: StateFactory) -> None:
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=1, intents=[intent("k1")]))
    again = await state.commit(FoldCommit(checkpoint=1, intents=[intent("k1"), intent("k2")]))
    assert again == ["k2"]
    assert await state.outbox_counts() == {"queued": 2}


async def test_merges_move_identities(open_state: StateFactory) -> None:
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=1, identities={"a": "anon", "b": "anon"}))
    await state.commit(FoldCommit(checkpoint=2, merges={"anon": "u1"}, deleted_contacts=["anon"]))
    assert await state.resolve(["a", "b"]) == {"a": "u1", "b": "u1"}


async def test_outbox_moves_through_its_states(open_state: StateFactory) -> None:
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=1, intents=[intent("k1"), intent("k2", "u2")]))
    assert [r.intent.key for r in await state.outbox_due(10.0, 10)] == ["k1", "k2"]
    await state.outbox_update(
        [
            update(
                "k1",
                OutboxStatus.DEFERRED,
                code=451,
                next_at=100.0,
                message_id="<m@x>",
                text="later",
            ),
            update("k2", OutboxStatus.SENT, code=250, next_at=11.0, message_id="<n@x>", text="ok"),
        ]
    )
    assert await state.outbox_due(50.0, 10) == []
    [due] = await state.outbox_due(100.0, 10)
    assert (due.status, due.attempts, due.last_code) == ("deferred", 1, 451)
    assert [r.status for r in await state.outbox_for_contact(["u2"], 10)] == ["sent"]
    assert await state.outbox_counts() == {"deferred": 1, "sent": 1}


async def test_lifecycle_outbox_and_journey_versions(open_state: StateFactory) -> None:
    state = await open_state()
    events = [
        Event(type="track", message_id=f"Email Queued:k{i}", contact_key="u1", event="x")
        for i in range(3)
    ]
    await state.commit(FoldCommit(checkpoint=1, lifecycle=events))
    assert [e.message_id for e in await state.unshipped_lifecycle(10)] == [
        e.message_id for e in events
    ]
    await state.forget_lifecycle(["Email Queued:k0", "Email Queued:k1"])
    assert [e.message_id for e in await state.unshipped_lifecycle(10)] == ["Email Queued:k2"]
    await state.save_journey_versions([("j", "v1", b"{}"), ("j", "v2", b"{}")])
    await state.save_journey_versions([("j", "v1", b"{}")])
    assert sorted(await state.journey_versions()) == [("j", "v1", b"{}"), ("j", "v2", b"{}")]


async def test_state_survives_reopening(open_state: StateFactory) -> None:
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=5, contacts=[Contact(id="u1")]))
    await state.close()
    again = await open_state()
    assert await again.checkpoint() == 5
    assert await again.contact("u1") is not None


async def test_waiting_rows_by_status(open_state: StateFactory) -> None:
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=1, intents=[intent("q1"), intent("d1")]))
    await state.outbox_update(
        [update("d1", OutboxStatus.DEFERRED, code=451, next_at=5.0, updated_at=5.0)]
    )
    assert [r.intent.key for r in await state.outbox_due(20.0, 10, "deferred")] == ["d1"]
    assert [r.intent.key for r in await state.outbox_due(20.0, 10, "queued")] == ["q1"]
    with pytest.raises(ValueError, match="not waiting"):
        await state.outbox_due(20.0, 10, "sent")


async def test_outbox_queued_names_only_rows_still_queued(open_state: StateFactory) -> None:
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=1, intents=[intent("k1"), intent("k2")]))
    await state.outbox_update(
        [update("k2", OutboxStatus.SENT, code=250, next_at=11.0, message_id="<m2@x>", text="ok")]
    )
    assert await state.outbox_queued(["k1", "k2", "nope"]) == {"k1"}
    assert await state.outbox_queued([]) == set()
    many = [f"x{n}" for n in range(1200)] + ["k1"]  # more than one query's worth of keys
    assert await state.outbox_queued(many) == {"k1"}


async def test_segment_timers_come_due_and_go_with_their_contact(
    open_state: StateFactory,
) -> None:
    state = await open_state()
    contacts = [Contact(id="a"), Contact(id="b"), Contact(id="c")]
    timers: dict[str, float | None] = {"a": 50.0, "b": 20.0, "c": 30.0}
    await state.commit(FoldCommit(checkpoint=1, contacts=contacts, segment_timers=timers))
    await state.commit(FoldCommit(checkpoint=2, instances=[instance("i1", 40.0)]))
    assert await state.next_wake() == 20.0
    assert await state.due_segment_timers(30.0, 10) == ["b", "c"]
    assert await state.due_segment_timers(60.0, 1) == ["b"]
    # Cleared, and merged away: neither fires again.
    await state.commit(
        FoldCommit(
            checkpoint=3, segment_timers={"b": None}, merges={"c": "a"}, deleted_contacts=["c"]
        )
    )
    assert await state.due_segment_timers(100.0, 10) == ["a"]
    assert await state.next_wake() == 40.0


async def test_interest_is_indexed_by_object_and_follows_merges(
    open_state: StateFactory,
) -> None:
    state = await open_state()
    interests = [("p:1:Viewed", "a", 10.0), ("p:1:Viewed", "b", 30.0), ("p:2:Viewed", "a", 50.0)]
    await state.commit(FoldCommit(checkpoint=1, interests=interests))
    # A later interest moves the time forward, an older one does not move it back.
    await state.commit(FoldCommit(checkpoint=2, interests=[("p:1:Viewed", "a", 40.0)]))
    await state.commit(FoldCommit(checkpoint=3, interests=[("p:1:Viewed", "a", 5.0)]))
    assert await state.interested("p:1:Viewed", 35.0) == ["a"]
    assert await state.interested("p:1:Viewed", 0.0) == ["a", "b"]
    assert await state.interested("p:3:Viewed", 0.0) == []
    # b merges into a: one row for a, at the later of the two.
    await state.commit(FoldCommit(checkpoint=4, merges={"b": "a"}, deleted_contacts=["b"]))
    assert await state.interested("p:1:Viewed", 0.0) == ["a"]
    assert await state.interested("p:1:Viewed", 35.0) == ["a"]


async def test_a_campaign_advances_only_while_it_runs(open_state: StateFactory) -> None:
    state = await open_state()
    assert await state.create_campaign("c1", "scheduled", b'{"id":"c1"}', 1.0)
    assert not await state.create_campaign("c1", "sending", b"{}", 2.0)  # the id is taken
    await state.advance_campaign("c1", cursor="u2", appended=2, status="sending", at=3.0)
    record = await state.campaign("c1")
    assert record is not None
    assert (record.status, record.cursor, record.appended, record.body) == (
        "sending",
        "u2",
        2,
        b'{"id":"c1"}',
    )
    # Paused meanwhile: a page read before the pause does not set it running again.
    await state.set_campaign_status("c1", "paused", 4.0)
    await state.advance_campaign("c1", cursor="u4", appended=2, status="sending", at=5.0)
    record = await state.campaign("c1")
    assert record is not None and (record.status, record.cursor) == ("paused", "u2")
    assert [r.id for r in await state.campaigns()] == ["c1"]
    assert await state.running_campaigns() == []  # paused: the runner does not look at it
    assert await state.campaign("nope") is None


async def test_campaign_messages_by_status_and_queued(open_state: StateFactory) -> None:
    state = await open_state()
    rows = [intent("campaign:c1:a"), intent("campaign:c1:b"), intent("campaign:c10:a")]
    await state.commit(FoldCommit(checkpoint=1, intents=[*rows, intent("other")]))
    await state.outbox_update([update("campaign:c1:b", "deferred", code=451, next_at=11.0)])
    await state.outbox_update([update("campaign:c1:b", "sent", code=250, next_at=12.0)])
    await state.outbox_update([update("campaign:c1:b", "sent", code=250, next_at=12.0)])
    assert await state.campaign_messages("c1") == {"queued": 1, "sent": 1}
    assert await state.campaign_messages("c10") == {"queued": 1}
    assert await state.campaign_messages("c") == {}
    assert await state.queued_count() == 3


async def test_contacts_and_instances_of_many_in_one_call(open_state: StateFactory) -> None:
    state = await open_state()
    many = [Contact(id=f"c{n:04d}", email=f"c{n}@example.com") for n in range(1200)]
    later = instance("i-later", None, contact="c0007", entered_at=5.0)
    earlier = instance("i-earlier", None, "completed", contact="c0007", journey="k", entered_at=2.0)
    await state.commit(FoldCommit(checkpoint=1, contacts=many, instances=[later, earlier]))
    # More ids than SQLite binds to one statement's IN list in a chunk, and one unknown.
    wanted = [c.id for c in many] + ["nobody"]
    found = await state.contacts(wanted)
    assert sorted(found) == [c.id for c in many]
    assert found["c1199"].email == "c1199@example.com"
    instances = await state.instances_of(wanted)
    assert list(instances) == ["c0007"]
    assert [i.instance_id for i in instances["c0007"]] == ["i-earlier", "i-later"]
    assert instances["c0007"] == await state.instances_for("c0007")
    assert await state.contacts([]) == {} and await state.instances_of([]) == {}
