"""An erasure in the state store, on both stores: in the commit that makes the tombstone, the
erased contact's messages (under every id of theirs) lose the address, what the template was
given and the last reply's words, those still waiting end suppressed; its journey instances,
interests, segment timer and consent records go; its lifecycle events waiting to be shipped are
scrubbed; other contacts' are left alone."""

from __future__ import annotations

from mailpulse.store import FoldCommit, InstanceRecord, OutboxRow, OutboxStatus, OutboxUpdate
from mailpulse.store.rows import ERASED_TEXT
from mailpulse.types import ConsentRecord, Contact, Event, SendIntent
from tests.store.conftest import StateFactory


def row(key: str, contact: str) -> OutboxRow:
    return OutboxRow(
        intent=SendIntent(
            key=key,
            contact_id=contact,
            email=f"{contact}@example.com",
            template="welcome",
            context={"contact": {"name": "Ana", "email": f"{contact}@example.com"}},
            created_at=10.0,
        ),
        status=OutboxStatus.QUEUED,
        next_attempt_at=10.0,
        updated_at=10.0,
    )


def consent(contact: str) -> ConsentRecord:
    return ConsentRecord(
        id=f"c-{contact}",
        contact_id=contact,
        address=f"{contact}@example.com",
        topic="news",
        action="granted",
        source="api",
        at=5.0,
        ip="203.0.113.5",
        user_agent="Firefox",
    )


def sent(contact: str) -> Event:
    return Event(
        type="track",
        message_id=f"Email Sent:{contact}",
        contact_key=contact,
        event="Email Sent",
        properties={"key": f"k-{contact}", "recipient": f"{contact}@example.com"},
    )


def instance(contact: str) -> InstanceRecord:
    return InstanceRecord(
        instance_id=f"i-{contact}",
        contact_id=contact,
        journey_id="welcome",
        status="active",
        wake_at=50.0,
        entered_at=5.0,
        body=b'{"trigger": {"email": "x"}}',
    )


async def test_an_erasure_leaves_nothing_personal_of_the_contact(
    open_state: StateFactory,
) -> None:
    state = await open_state()
    # u1 is also known as anon-1, whose messages were made before the two merged.
    await state.commit(
        FoldCommit(
            checkpoint=1,
            contacts=[Contact(id="u1", email="u1@example.com"), Contact(id="u2")],
            identities={"u1": "u1", "anon-1": "u1", "u2": "u2"},
            intents=[row("k1", "u1"), row("k2", "anon-1"), row("k3", "u1"), row("k4", "u2")],
            instances=[instance("u1"), instance("u2")],
            interests=[("object:products:1", "u1", 5.0), ("object:products:1", "u2", 5.0)],
            segment_timers={"u1": 60.0, "u2": 60.0},
            consents=[consent("u1"), consent("u2")],
            lifecycle=[sent("u1"), sent("u2")],
        )
    )
    # k3 went out already, with a reply that quotes the address.
    await state.outbox_update(
        [
            OutboxUpdate(
                key="k3",
                status=OutboxStatus.SENT,
                attempts=1,
                next_attempt_at=11.0,
                message_id="<k3@shop.test>",
                last_code=250,
                last_text="250 ok for <u1@example.com>",
                updated_at=11.0,
            )
        ]
    )
    await state.commit(
        FoldCommit(checkpoint=2, contacts=[Contact(id="u1", erased_at=20.0)], erasures={"u1": 20.0})
    )

    rows = {r.intent.key: r for r in await state.outbox_for_contact(["u1", "anon-1", "u2"], 10)}
    for key in ("k1", "k2"):
        assert rows[key].status == OutboxStatus.SUPPRESSED and rows[key].last_text == ERASED_TEXT
        assert rows[key].updated_at == 20.0
    assert rows["k3"].status == OutboxStatus.SENT and rows["k3"].last_text == ""
    assert rows["k3"].last_code == 250 and rows["k3"].message_id == "<k3@shop.test>"
    for key in ("k1", "k2", "k3"):
        assert rows[key].intent.email == "" and rows[key].intent.context == {}
        assert rows[key].intent.template == "welcome"
    assert rows["k4"].intent.email == "u2@example.com" and rows["k4"].status == "queued"
    assert await state.outbox_due(1e9, 10) == [rows["k4"]]

    assert await state.instances_for("u1") == [] and len(await state.instances_for("u2")) == 1
    assert await state.interested("object:products:1", 0.0) == ["u2"]
    assert await state.due_segment_timers(1e9, 10) == ["u2"]
    assert await state.consents_of("u1", 10) == [] and len(await state.consents_of("u2", 10)) == 1
    unshipped = {e.contact_key: e for e in await state.unshipped_lifecycle(10)}
    assert unshipped["u1"].properties == {"key": "k-u1"}
    assert unshipped["u2"].properties["recipient"] == "u2@example.com"
    tombstone = await state.contact("u1")
    assert tombstone == Contact(id="u1", erased_at=20.0)
    assert sorted(await state.identities_of("u1")) == ["anon-1", "u1"]

    # Erased again (a straggler's event): nothing more to do, nothing breaks.
    await state.commit(FoldCommit(checkpoint=3, erasures={"u1": 20.0}))
    again = {r.intent.key: r for r in await state.outbox_for_contact(["u1", "anon-1"], 10)}
    assert again == {k: rows[k] for k in ("k1", "k2", "k3")}
