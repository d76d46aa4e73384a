"""Where the preference page says a contact stands: from the address's suppression entries and
the contact's consent, each topic subscribed, unsubscribed, not subscribed, awaiting its
confirmation, or blocked by an entry that is not the person's to lift; and the page after a
change, before the fold has it."""

from __future__ import annotations

from mailpulse.feedback.pages import (
    AWAITING,
    BLOCKED,
    NOT_SUBSCRIBED,
    SUBSCRIBED,
    UNSUBSCRIBED,
    preferences,
)
from mailpulse.policy.suppression import entry
from mailpulse.policy.topics import Topic

TOPICS = {
    t.id: t
    for t in (
        Topic(id="offers", name="Offers"),
        Topic(id="tips", name="Tips"),
        Topic(id="vip", name="VIP", opt_in=True),
        Topic(id="news", name="News", opt_in=True, double_opt_in=True),
        Topic(id="digest", name="Digest", opt_in=True, double_opt_in=True),
    )
}
ANN = "ann@example.com"


def states(view) -> dict[str, str]:
    return {choice.topic.id: choice.state for choice in view.topics}


def test_each_topic_shows_where_the_contact_stands() -> None:
    view = preferences(
        TOPICS,
        [
            entry(ANN, "unsubscribe", topic="offers", at=1.0),
            entry(ANN, "manual", topic="tips", at=1.0),
        ],
        {"vip": "granted", "news": "granted", "digest": "confirmed"},
    )
    assert view.all_marketing == SUBSCRIBED
    assert states(view) == {
        "offers": UNSUBSCRIBED,
        "tips": BLOCKED,
        "vip": SUBSCRIBED,
        "news": AWAITING,
        "digest": SUBSCRIBED,
    }
    buttons = {c.topic.id: (c.can_subscribe, c.can_unsubscribe) for c in view.topics}
    assert buttons == {
        "offers": (True, False),
        "tips": (False, False),  # an operator's: not the person's to lift
        "vip": (False, True),
        "news": (True, False),  # subscribing here confirms
        "digest": (False, True),
    }
    assert states(preferences(TOPICS, [], {}))["vip"] == NOT_SUBSCRIBED
    assert states(preferences(TOPICS, [], {"vip": "withdrawn"}))["vip"] == NOT_SUBSCRIBED


def test_all_marketing_is_unsubscribed_or_blocked_by_a_global_entry() -> None:
    assert preferences(TOPICS, [entry(ANN, "unsubscribe", at=1.0)], {}).all_marketing == (
        UNSUBSCRIBED
    )
    for reason in ("hard_bounce", "complaint", "manual", "erased"):
        view = preferences(TOPICS, [entry(ANN, reason, at=1.0)], {})
        assert view.all_marketing == BLOCKED


def test_the_page_after_a_change_shows_it_and_never_lifts_a_block() -> None:
    view = preferences(TOPICS, [entry(ANN, "manual", topic="tips", at=1.0)], {})
    after = (
        view.after("unsubscribe", "offers").after("subscribe", "tips").after("subscribe", "news")
    )
    assert states(after) == {**states(view), "offers": UNSUBSCRIBED, "news": SUBSCRIBED}
    assert after.after("unsubscribe", "").all_marketing == UNSUBSCRIBED
    blocked = preferences(TOPICS, [entry(ANN, "complaint", at=1.0)], {})
    assert blocked.after("subscribe", "").all_marketing == BLOCKED
