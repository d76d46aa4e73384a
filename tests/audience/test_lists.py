"""Lists: an identify call naming a list puts its contact in it, once; merged contacts are in
the lists of both; members are counted under list:<name>, beside segments."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailpulse.audience import lists, merge_contacts
from mailpulse.types import Contact, Event, EventType


def named(name: object, kind: EventType = EventType.IDENTIFY) -> Event:
    return Event(type=kind, message_id="m", contact_key="u", user_id="u", context={"list": name})


def test_an_identify_naming_a_list_puts_its_contact_in_it_once() -> None:
    contact = Contact(id="u")
    assert lists.join(contact, named("spring-fair")) == "spring-fair"
    assert lists.join(contact, named("autumn")) == "autumn"
    assert lists.join(contact, named("spring-fair")) is None  # in it already: not counted again
    assert contact.lists == ["autumn", "spring-fair"]


def test_what_names_no_list_puts_nobody_in_one() -> None:
    contact = Contact(id="u")
    for event in (
        named("fair", EventType.TRACK),  # the contact's doings are not an import
        named(""),
        named("a" * 65),
        named("two words"),
        named(["fair"]),
        Event(type=EventType.IDENTIFY, message_id="m", contact_key="u", user_id="u"),
    ):
        assert lists.join(contact, event) is None
    assert contact.lists == []


def test_a_contact_is_in_at_most_max_lists() -> None:
    contact = Contact(id="u", lists=[f"l{n:03}" for n in range(lists.MAX_LISTS)])
    assert lists.join(contact, named("one-more")) is None
    assert len(contact.lists) == lists.MAX_LISTS and "one-more" not in contact.lists


def test_a_merged_contact_is_in_the_lists_of_both() -> None:
    target, source = Contact(id="a", lists=["b", "c"]), Contact(id="x", lists=["a", "c"])
    merge_contacts(target, source)
    assert target.lists == ["a", "b", "c"]
    full = [f"l{n:03}" for n in range(lists.MAX_LISTS)]
    target, source = Contact(id="a", lists=full), Contact(id="x", lists=["a", "b"])
    merge_contacts(target, source)
    assert target.lists == full  # the survivor's first, and no more than MAX_LISTS


def test_lists_are_told_apart_from_segments_among_the_counts() -> None:
    counts = {"vip": 3, lists.members_key("fair"): 2, lists.members_key("gone"): 0}
    assert lists.lists_in(counts) == {"fair": 2}


@given(st.lists(st.from_regex(lists.LIST_NAME, fullmatch=True), max_size=20))
def test_joining_keeps_each_list_once_in_order(names: list[str]) -> None:
    contact = Contact(id="u")
    joined = [name for name in names if lists.join(contact, named(name)) is not None]
    assert contact.lists == sorted(set(names)) == sorted(joined)
