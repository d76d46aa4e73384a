"""Erasure and retention in the event log, on both stores: a contact's events are rewritten in
place without personal data (offsets, ids, types and names stand), mailpulse's own events keep
what says which message and what became of it; retention deletes only the oldest events, up
to what the fold applied, never the newest, and the log reads on without a gap."""

from __future__ import annotations

from mailpulse.privacy.erasure import erase_event
from mailpulse.privacy.scrub import scrub_event
from mailpulse.types import Event
from tests.store.conftest import LogFactory

ADDRESS = "ana@example.com"


def identify(message_id: str, user: str, at: float = 1000.0) -> Event:
    return Event(
        type="identify",
        message_id=message_id,
        contact_key=user,
        user_id=user,
        traits={"email": ADDRESS, "name": "Ana"},
        context={"ip": "203.0.113.5", "userAgent": "Firefox"},
        received_at=at,
        timestamp=at,
    )


def bounced(message_id: str, contact: str) -> Event:
    return Event(
        type="track",
        message_id=message_id,
        contact_key=contact,
        event="Email Bounced",
        properties={
            "key": "campaign:c1:u1",
            "template": "welcome",
            "smtp_code": 550,
            "smtp_status": "5.1.1",
            "smtp_text": f"<{ADDRESS}>: no such user",
            "recipient": ADDRESS,
        },
        context={"library": {"name": "mailpulse"}},
        received_at=1001.0,
        timestamp=1001.0,
    )


def test_what_scrubbing_leaves() -> None:
    customer = scrub_event(identify("m1", "u1"))
    assert (customer.traits, customer.context, customer.properties) == ({}, {}, {})
    assert (customer.type, customer.message_id, customer.user_id) == ("identify", "m1", "u1")
    own = scrub_event(bounced("m2", "u1"))
    assert own.properties == {
        "key": "campaign:c1:u1",
        "template": "welcome",
        "smtp_code": 550,
        "smtp_status": "5.1.1",
    }
    assert own.context == {"library": {"name": "mailpulse"}} and own.event == "Email Bounced"
    erase = erase_event("u1", ["a" * 64], 5.0)
    assert scrub_event(erase) == erase


async def test_a_contacts_events_are_scrubbed_in_place(open_log: LogFactory) -> None:
    log = await open_log()
    await log.append(
        [identify("m1", "u1"), identify("m2", "anon-1"), bounced("m3", "u1"), identify("m4", "u2")]
    )
    assert await log.scrub_contact(["u1", "anon-1"]) == 3
    events = await log.read(0, 10)
    assert [e.offset for e in events] == [1, 2, 3, 4]
    assert [e.message_id for e in events] == ["m1", "m2", "m3", "m4"]
    text = repr(events[:3])
    assert ADDRESS not in text and "Ana" not in text and "203.0.113.5" not in text
    assert events[3].traits["email"] == ADDRESS  # another contact's, left alone
    assert events[2].properties["smtp_status"] == "5.1.1"
    # Again: nothing is left to change.
    assert await log.scrub_contact(["u1", "anon-1"]) == 0
    assert await log.scrub_contact([]) == 0


async def test_events_are_scrubbed_by_their_place(open_log: LogFactory) -> None:
    log = await open_log()
    fresh = await log.append([identify("m1", "u1"), identify("m2", "u1")])
    assert await log.scrub_events([(fresh[1].partition, fresh[1].offset)]) == 1
    first, second = await log.read(0, 10)
    assert first.traits["email"] == ADDRESS and second.traits == {}
    assert await log.scrub_events([]) == 0


async def test_retention_deletes_the_oldest_folded_events_only(open_log: LogFactory) -> None:
    log = await open_log()
    await log.append([identify(f"m{n}", "u1", at=float(n)) for n in range(1, 11)])
    # Received before 5, and folded up to 3: the first three go.
    assert await log.forget_before(0, through=3, before=5.0, limit=100) == 3
    assert [e.offset for e in await log.read(0, 100)] == list(range(4, 11))
    # Folded up to 10, but received before 7: up to offset 6, a page of 2 at a time.
    assert await log.forget_before(0, through=10, before=7.0, limit=2) == 2
    assert await log.forget_before(0, through=10, before=7.0, limit=2) == 1
    assert await log.forget_before(0, through=10, before=7.0, limit=2) == 0
    assert [e.offset for e in await log.read(0, 100)] == list(range(7, 11))
    # Everything old and folded: the newest event stays, and offsets go on from it.
    await log.forget_before(0, through=10, before=1e12, limit=100)
    assert [e.offset for e in await log.read(0, 100)] == [10]
    assert await log.head() == 10
    reopened = await open_log()
    fresh = await reopened.append([identify("m11", "u1", at=11.0)])
    assert fresh[0].offset == 11
