"""What bounces need of the state store, on both stores: a sent message's row found by its
Message-ID (never a row not yet tried), and soft bounces counted per address, once per event,
across stores open on the same data, with those past the window forgotten."""

from __future__ import annotations

from mailpulse.delivery.mime import make_message_id
from mailpulse.store import FoldCommit, SoftBounce
from tests.store.conftest import StateFactory
from tests.store.test_state_contract import intent, update

WEEK = 7 * 86400.0


async def test_a_sent_message_is_found_by_its_message_id(open_state: StateFactory) -> None:
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=1, intents=[intent("campaign:w:a"), intent("b")]))
    sent_id = make_message_id("campaign:w:a", "shop.test")
    await state.outbox_update(
        [update("campaign:w:a", "sent", code=250, next_at=11.0, message_id=sent_id)]
    )
    found = await state.outbox_by_message_id(sent_id)
    assert found is not None and found.intent.key == "campaign:w:a" and found.status == "sent"
    assert found.intent.email == "u1@example.com"
    assert await state.outbox_by_message_id(make_message_id("b", "shop.test")) is None
    # A row not yet tried has no Message-ID: an empty one finds nothing.
    assert await state.outbox_by_message_id("") is None


async def test_soft_bounces_are_counted_once_per_event_and_forgotten_after_the_window(
    open_state: StateFactory,
) -> None:
    state, other = await open_state(), await open_state()
    first = [
        SoftBounce("h1", "Email Bounced:k1:a", 100.0, WEEK),
        SoftBounce("h2", "e2", 150.0, WEEK),
    ]
    await state.commit(FoldCommit(checkpoint=1, soft_bounces=first))
    # A re-fold of the same event counts nothing more.
    await state.commit(FoldCommit(checkpoint=1, soft_bounces=first[:1]))
    assert await other.soft_bounces_since(["h1", "h2", "h3"], 0.0) == {
        "h1": [100.0],
        "h2": [150.0],
    }
    later = SoftBounce("h1", "e3", 100.0 + WEEK + 1, WEEK)
    await state.commit(FoldCommit(checkpoint=2, soft_bounces=[later]))
    assert await state.soft_bounces_since(["h1"], 0.0) == {"h1": [100.0 + WEEK + 1]}
    assert await state.soft_bounces_since(["h2"], 151.0) == {}
    assert await state.soft_bounces_since([], 0.0) == {}
