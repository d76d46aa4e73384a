"""Profiles: identify merges traits, addresses are normalized, merges keep the survivor's."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailpulse.audience import apply_event, merge_contacts, merge_traits, normalize_email
from mailpulse.types import Contact, Event

json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
traits = st.dictionaries(st.text(min_size=1, max_size=10), json_scalars, max_size=6)


def identify(user: str, t: dict, ts: float = 1.0) -> Event:
    return Event(
        type="identify", message_id="m", contact_key=user, user_id=user, traits=t, timestamp=ts
    )


def test_email_is_normalized_or_refused_with_a_reason() -> None:
    assert normalize_email("Ana@Example.COM") == ("Ana@example.com", None)
    address, reason = normalize_email("ana@")
    assert address is None and reason is not None and "ana@" in reason


def test_identify_sets_the_address_and_later_traits_win() -> None:
    c = Contact(id="u")
    apply_event(c, identify("u", {"email": "a@example.com", "plan": "free"}, ts=5))
    apply_event(c, identify("u", {"plan": "pro"}, ts=3))
    assert c.email == "a@example.com" and c.traits["plan"] == "pro"
    assert (c.first_seen, c.last_seen, c.known) == (3, 5, True)
    apply_event(c, identify("u", {"email": 42}))
    assert c.email is None and "not a string" in (c.email_error or "")


def test_track_context_traits_are_folded_too() -> None:
    c = Contact(id="u")
    apply_event(
        c,
        Event(
            type="track",
            message_id="m",
            contact_key="u",
            anonymous_id="u",
            event="x",
            context={"traits": {"email": "t@example.com"}},
        ),
    )
    assert c.email == "t@example.com" and not c.known


@given(traits, traits)
def test_merge_traits_is_an_overwrite(first: dict, second: dict) -> None:
    c = Contact(id="u")
    merge_traits(c, first)
    merge_traits(c, second)
    assert c.traits == {**first, **second}


@given(traits, traits)
def test_the_survivor_wins_a_merge(target_traits: dict, source_traits: dict) -> None:
    target = Contact(id="t", traits=dict(target_traits), first_seen=5, last_seen=5, known=True)
    source = Contact(
        id="s", traits=dict(source_traits), email="s@example.com", first_seen=2, last_seen=9
    )
    merge_contacts(target, source)
    assert target.traits == {**source_traits, **target_traits}
    assert target.email == "s@example.com"
    assert (target.first_seen, target.last_seen, target.known) == (2, 9, True)
