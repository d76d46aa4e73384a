"""Consent: what `Subscribed` and `Unsubscribed` events change (records, unsubscribe entries,
lifts, double opt-in requests), who may claim which source, and the gate of opt-in topics."""

from __future__ import annotations

from typing import Any

import pytest

from mailpulse.policy import SendPolicy, check_send
from mailpulse.policy.consent import (
    CONFIRM_TEMPLATE,
    CONFIRMED,
    GRANTED,
    WITHDRAWN,
    apply_subscription,
    confirmation_intent,
    consent_problem,
    is_confirmation,
    subscribed_event,
    unsubscribed_event,
)
from mailpulse.policy.suppression import address_hash
from mailpulse.policy.topics import Topic
from mailpulse.types import Contact, Event, MessageClass

OFFERS = Topic(id="offers", name="Offers")
VIP = Topic(id="vip", name="VIP", opt_in=True)
NEWS = Topic(id="news", name="Newsletter", description="Weekly", opt_in=True, double_opt_in=True)
TOPICS = {t.id: t for t in (OFFERS, VIP, NEWS)}
NOW = 1_800_000_000.0


def ann() -> Contact:
    return Contact(id="ann", email="Ann@Example.com")


def customer(name: str, properties: dict[str, Any], **context: Any) -> Event:
    """What a customer's app sends through /v1/track."""
    return Event(
        type="track",
        message_id=f"m-{name}-{len(properties)}",
        contact_key="ann",
        user_id="ann",
        event=name,
        properties=properties,
        context=context,
        timestamp=NOW,
        received_at=NOW + 1,
    )


def test_a_one_click_unsubscribe_adds_a_topic_entry_and_a_withdrawal() -> None:
    contact = ann()
    ev = unsubscribed_event(
        "ann",
        "ann@example.com",
        "offers",
        source="one_click",
        at=NOW,
        key="campaign:sale:ann",
        ip="203.0.113.9",
        user_agent="Mozilla/5.0",
    )
    change = apply_subscription(contact, ev, TOPICS)
    assert change is not None and change.suppress is not None
    assert (change.suppress.address, change.suppress.topic, change.suppress.reason) == (
        "ann@example.com",
        "offers",
        "unsubscribe",
    )
    assert change.suppress.detail == "from message campaign:sale:ann"
    assert change.suppress.source == "one_click"
    record = change.record
    assert (record.id, record.contact_id, record.topic, record.action, record.source) == (
        ev.message_id,
        "ann",
        "offers",
        WITHDRAWN,
        "one_click",
    )
    assert (record.ip, record.user_agent, record.at) == ("203.0.113.9", "Mozilla/5.0", NOW)
    assert contact.consent == {"offers": WITHDRAWN}
    assert change.lift is None and change.confirm is None


def test_own_events_are_each_their_own() -> None:
    # The same person may unsubscribe twice from one message (resubscribing between): the
    # log's dedup by message id must keep both.
    first = unsubscribed_event("ann", "a@b.c", "", source="one_click", at=NOW)
    second = unsubscribed_event("ann", "a@b.c", "", source="one_click", at=NOW)
    assert first.message_id != second.message_id
    assert first.user_id is None and first.anonymous_id is None
    assert "topic" not in first.properties  # global


def test_a_resubscribe_lifts_the_unsubscribe_of_its_scope_only() -> None:
    contact = ann()
    ev = subscribed_event(
        "ann", "ann@example.com", "", action=GRANTED, source="preference_center", at=NOW
    )
    change = apply_subscription(contact, ev, TOPICS)
    assert change is not None
    assert change.lift == (address_hash("ann@example.com"), "")
    assert change.suppress is None and contact.consent == {}
    offers = subscribed_event(
        "ann", "ann@example.com", "offers", action=GRANTED, source="preference_center", at=NOW
    )
    change = apply_subscription(contact, offers, TOPICS)
    assert change is not None and change.lift == (address_hash("ann@example.com"), "offers")
    assert contact.consent == {"offers": GRANTED}


def test_a_customers_subscribe_to_an_opt_in_topic_is_consent_at_once() -> None:
    contact = ann()
    ev = customer(
        "Subscribed",
        {"topic": "vip", "wording": "Yes,\n send me  VIP offers", "source": "signup_form"},
        ip="198.51.100.7",
        userAgent="Safari",
    )
    change = apply_subscription(contact, ev, TOPICS)
    assert change is not None
    record = change.record
    assert (record.address, record.action, record.source, record.wording) == (
        "ann@example.com",  # the contact's own, lower case
        GRANTED,
        "signup_form",
        "Yes, send me VIP offers",
    )
    assert (record.ip, record.user_agent, record.at) == ("198.51.100.7", "Safari", NOW + 1)
    assert contact.consent == {"vip": GRANTED}
    assert change.lift == (address_hash("ann@example.com"), "vip")


@pytest.mark.parametrize("claimed", ["double_opt_in", "preference_center", "one_click", "mailto"])
def test_a_customer_cannot_claim_mailpulses_own_sources_or_a_confirmation(claimed: str) -> None:
    contact = ann()
    ev = customer("Subscribed", {"topic": "news", "source": claimed, "action": CONFIRMED})
    change = apply_subscription(contact, ev, TOPICS)
    assert change is not None
    assert (change.record.source, change.record.action) == ("api", GRANTED)
    # A double opt-in topic only asked: a confirmation goes, nothing is lifted yet.
    assert change.confirm == NEWS and change.lift is None
    assert contact.consent == {"news": GRANTED}
    awaiting = "topic news awaits the contact's double opt-in confirmation"
    assert consent_problem(contact.consent, NEWS) == awaiting


def test_double_opt_in_flows_once_confirmed_and_is_not_asked_again() -> None:
    contact = ann()
    asked = apply_subscription(contact, customer("Subscribed", {"topic": "news"}), TOPICS)
    assert asked is not None and asked.confirm == NEWS
    confirmed = subscribed_event(
        "ann", "ann@example.com", "news", action=CONFIRMED, source="double_opt_in", at=NOW
    )
    change = apply_subscription(contact, confirmed, TOPICS)
    assert change is not None and change.confirm is None
    assert change.lift == (address_hash("ann@example.com"), "news")
    assert contact.consent == {"news": CONFIRMED} and consent_problem(contact.consent, NEWS) is None
    again = apply_subscription(contact, customer("Subscribed", {"topic": "news", "x": 1}), TOPICS)
    assert again is not None and again.confirm is None and contact.consent == {"news": CONFIRMED}
    # Withdrawn, it must be confirmed anew.
    apply_subscription(contact, customer("Unsubscribed", {"topic": "news"}), TOPICS)
    anew = apply_subscription(contact, customer("Subscribed", {"topic": "news", "y": 2}), TOPICS)
    assert anew is not None and anew.confirm == NEWS


def test_no_address_no_entry_and_no_confirmation_but_a_record() -> None:
    contact = Contact(id="ann")
    gone = apply_subscription(contact, customer("Unsubscribed", {}), TOPICS)
    assert gone is not None and gone.suppress is None and gone.record.address == ""
    asked = apply_subscription(contact, customer("Subscribed", {"topic": "news"}), TOPICS)
    assert asked is not None and asked.confirm is None


@pytest.mark.parametrize(
    "properties", [{"topic": 7}, {"topic": "two words"}, {"topic": ["news"]}, {"topic": "x" * 65}]
)
def test_a_topic_that_is_no_topic_id_changes_nothing(properties: dict[str, Any]) -> None:
    contact = ann()
    assert apply_subscription(contact, customer("Subscribed", properties), TOPICS) is None
    assert contact.consent == {}


def test_other_events_are_not_subscriptions() -> None:
    assert apply_subscription(ann(), customer("Order Completed", {"topic": "news"}), TOPICS) is None


def test_hostile_values_are_clipped_to_one_line() -> None:
    ev = customer(
        "Subscribed",
        {"topic": "vip", "wording": "w" * 5000, "source": "s\r\nX-Injected: 1" + "s" * 100},
        ip=["not", "text"],
        userAgent="u" * 2000,
    )
    change = apply_subscription(ann(), ev, TOPICS)
    assert change is not None
    record = change.record
    assert len(record.wording) == 2000 and record.ip == ""
    assert len(record.user_agent) == 512 and len(record.source) == 64
    assert "\n" not in record.source


def test_the_gate_sends_an_opt_in_topics_marketing_only_with_consent() -> None:
    policy = SendPolicy(topics=TOPICS)
    contact = ann()
    refused = check_send(contact, MessageClass.MARKETING, NOW, policy, "vip")
    assert (refused.allowed, refused.reason) == (
        False,
        "topic vip is opt-in and the contact has not consented",
    )
    # An opt-out topic, no topic, or a transactional message of the topic: no consent asked.
    assert check_send(contact, MessageClass.MARKETING, NOW, policy, "offers").allowed
    assert check_send(contact, MessageClass.MARKETING, NOW, policy, None).allowed
    assert check_send(contact, MessageClass.TRANSACTIONAL, NOW, policy, "news").allowed
    contact.consent["vip"] = GRANTED
    assert check_send(contact, MessageClass.MARKETING, NOW, policy, "vip").allowed
    contact.consent["vip"] = WITHDRAWN
    assert not check_send(contact, MessageClass.MARKETING, NOW, policy, "vip").allowed


def test_the_confirmation_is_transactional_and_keyed_by_the_asking_event() -> None:
    contact = ann()
    ev = customer("Subscribed", {"topic": "news"})
    intent = confirmation_intent(contact, NEWS, ev, NOW, {"contact": {"id": "ann"}})
    assert intent.key == f"confirm:news:{ev.message_id}" and is_confirmation(intent)
    assert (intent.template, intent.message_class, intent.topic) == (
        CONFIRM_TEMPLATE,
        MessageClass.TRANSACTIONAL,
        "news",
    )
    assert intent.context["topic"] == {"id": "news", "name": "Newsletter", "description": "Weekly"}
    assert intent.email == "Ann@Example.com"
