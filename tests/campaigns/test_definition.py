"""Campaign definitions with an A/B test: what is accepted, and every mistake refused with a
JSON Pointer to it."""

from __future__ import annotations

from typing import Any

import pytest

from mailpulse.audience.segments import DefinitionError
from mailpulse.campaigns import Campaign, campaign_from_data, campaign_of_key
from mailpulse.campaigns.abtest import AbTest, Conversion, Variant

TEMPLATES = {"sale", "sale-alt"}
TESTED = {
    "variants": [
        {"id": "a"},
        {"id": "b", "subject": "Last chance, {{ contact.first_name | default('friend') }}"},
        {"id": "c", "template": "sale-alt"},
    ],
    "test_share": 0.2,
    "wait": "4h",
    "winner_by": "conversions",
    "conversion": {"event": "Order Completed", "within": "3d"},
    "confidence": 0.9,
    "if_undecided": "hold",
}


def campaign(ab_test: Any) -> Campaign:
    data = {"id": "sale", "template": "sale", "audience": "all", "ab_test": ab_test}
    return campaign_from_data(data, templates=TEMPLATES, segments=set(), now=1.0)


def test_an_ab_test_is_read_whole() -> None:
    assert campaign(TESTED).ab_test == AbTest(
        variants=(
            Variant(id="a"),
            Variant(id="b", subject=TESTED["variants"][1]["subject"]),
            Variant(id="c", template="sale-alt"),
        ),
        test_share=0.2,
        wait=4 * 3600,
        winner_by="conversions",
        conversion=Conversion(event="Order Completed", within=3 * 86400),
        confidence=0.9,
        if_undecided="hold",
    )


def test_the_defaults() -> None:
    tested = campaign(
        {
            "variants": [{"id": "a"}, {"id": "b", "subject": "B"}],
            "test_share": 1,
            "wait": "1s",
            "winner_by": "opens",
        }
    ).ab_test
    assert tested is not None
    assert (tested.confidence, tested.if_undecided, tested.conversion) == (0.95, "first", None)
    # A conversion without a window counts for as long as the test waits.
    with_event = campaign(
        {**TESTED, "wait": "2h", "conversion": {"event": "Order Completed"}}
    ).ab_test
    assert with_event is not None and with_event.conversion == Conversion(
        event="Order Completed", within=7200
    )
    assert (
        campaign_from_data(
            {"id": "x", "template": "sale", "audience": "all"},
            templates=TEMPLATES,
            segments=(),
            now=0,
        ).ab_test
        is None
    )


def test_a_message_key_names_its_campaign() -> None:
    key = campaign(TESTED).key_for("u:1")
    assert (key, campaign_of_key(key)) == ("campaign:sale:u:1", "sale")
    assert campaign_of_key("journey:x:1") is None
    assert campaign_of_key("campaign:nocolon") is None


def with_(**changes: Any) -> dict[str, Any]:
    return {**TESTED, **changes}


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in TESTED.items() if k != key}


def variants(*items: Any) -> dict[str, Any]:
    return with_(variants=list(items))


@pytest.mark.parametrize(
    ("ab_test", "pointer", "reason"),
    [
        ("yes", "/ab_test", "must be an object"),
        (with_(share=0.2), "/ab_test/share", "did you mean 'test_share'"),
        (without("variants"), "/ab_test", "missing `variants`"),
        (without("wait"), "/ab_test", "missing `wait`"),
        (variants({"id": "a"}), "/ab_test/variants", "2 to 5 variants, not 1"),
        (variants(*({"id": f"v{n}"} for n in range(6))), "/ab_test/variants", "not 6"),
        (with_(variants={"a": {}}), "/ab_test/variants", "must be a list"),
        (variants({"id": "a"}, "b"), "/ab_test/variants/1", "must be an object"),
        (variants({"id": "a"}, {"subject": "B"}), "/ab_test/variants/1", "missing `id`"),
        (variants({"id": "a"}, {"id": "a b"}), "/ab_test/variants/1/id", "1 to 32 letters"),
        (variants({"id": "a"}, {"id": "a"}), "/ab_test/variants/1/id", "two variants"),
        (
            variants({"id": "a"}, {"id": "b", "template": "sael"}),
            "/ab_test/variants/1/template",
            "did you mean 'sale'",
        ),
        (
            variants({"id": "a"}, {"id": "b", "subject": "Hi {{ contact.name"}),
            "/ab_test/variants/1/subject",
            "Jinja syntax error",
        ),
        (
            variants({"id": "a"}, {"id": "b", "subject": "{{ contact.__class__ }}"}),
            "/ab_test/variants/1/subject",
            "internal to Python",
        ),
        (
            variants({"id": "a"}, {"id": "b", "subject": ""}),
            "/ab_test/variants/1/subject",
            "must be a text",
        ),
        (
            variants({"id": "a"}, {"id": "b", "colour": "red"}),
            "/ab_test/variants/1/colour",
            "unknown key",
        ),
        (with_(test_share=0), "/ab_test/test_share", "more than 0 and at most 1"),
        (with_(test_share=1.5), "/ab_test/test_share", "more than 0 and at most 1"),
        (with_(test_share="20%"), "/ab_test/test_share", "must be a number"),
        (with_(test_share=True), "/ab_test/test_share", "must be a number"),
        (with_(wait="soon"), "/ab_test/wait", "not a duration"),
        (with_(wait="0s"), "/ab_test/wait", "longer than 0s"),
        (with_(winner_by="revenue"), "/ab_test/winner_by", "unknown winner_by"),
        (without("conversion"), "/ab_test/winner_by", "needs the event"),
        (with_(conversion={"within": "3d"}), "/ab_test/conversion", "missing `event`"),
        (
            with_(conversion={"event": "Order Completed", "within": -1}),
            "/ab_test/conversion/within",
            "cannot be negative",
        ),
        (with_(confidence=1), "/ab_test/confidence", "less than 1"),
        (with_(confidence=0), "/ab_test/confidence", "more than 0"),
        (with_(if_undecided="wait"), "/ab_test/if_undecided", "unknown if_undecided"),
    ],
)
def test_mistakes_are_refused_where_they_are(ab_test: Any, pointer: str, reason: str) -> None:
    with pytest.raises(DefinitionError) as refused:
        campaign(ab_test)
    assert refused.value.pointer == pointer
    assert reason in refused.value.reason


def audience(value: Any, known_lists: tuple[str, ...] = ("fair",)) -> Campaign:
    data = {"id": "sale", "template": "sale", "audience": value}
    return campaign_from_data(
        data, templates=TEMPLATES, segments={"vip"}, now=1.0, lists=known_lists
    )


def test_an_audience_is_everyone_a_segment_or_a_list() -> None:
    assert (audience("all").segment, audience("all").list) == (None, None)
    assert (audience({"segment": "vip"}).segment, audience({"segment": "vip"}).list) == (
        "vip",
        None,
    )
    assert (audience({"list": "fair"}).segment, audience({"list": "fair"}).list) == (None, "fair")


@pytest.mark.parametrize(
    ("value", "pointer", "reason"),
    [
        ({"list": "fiar"}, "/audience/list", "no contacts are in a list named 'fiar'"),
        ({"segment": "vip", "list": "fair"}, "/audience", "an audience is"),
        ({"lists": "fair"}, "/audience", "an audience is"),
        ({"list": 3}, "/audience/list", "list"),
    ],
)
def test_an_audience_that_names_nothing_is_refused_where_it_is(
    value: Any, pointer: str, reason: str
) -> None:
    with pytest.raises(DefinitionError) as refused:
        audience(value)
    assert refused.value.pointer == pointer
    assert reason in refused.value.reason


def sent_from(sender: str, signing_domain: str | None = "shop.example") -> Campaign:
    data = {"id": "sale", "template": "sale", "audience": "all", "sender": sender}
    return campaign_from_data(
        data, templates=TEMPLATES, segments=set(), now=1.0, signing_domain=signing_domain
    )


@pytest.mark.parametrize(
    "sender",
    [
        "News <news@shop.example>",
        '"Shop, News" <news@mail.shop.example>',  # a subdomain of the signing domain
        "news@SHOP.example",
    ],
)
def test_a_campaign_may_have_a_from_of_its_own(sender: str) -> None:
    assert sent_from(sender).sender == sender


def test_a_from_that_dmarc_would_refuse_is_refused_where_it_is() -> None:
    with pytest.raises(DefinitionError) as refused:
        sent_from("News <news@other.example>")
    assert refused.value.pointer == "/sender"
    assert "not aligned with the DKIM signing domain shop.example" in refused.value.reason
    with pytest.raises(DefinitionError) as refused:
        sent_from("News <news at shop.example>")
    assert refused.value.pointer == "/sender" and "is an address" in refused.value.reason
    assert sent_from("news@other.example", signing_domain=None).sender == "news@other.example"


def test_a_topic_the_project_does_not_declare_is_refused_at_its_pointer() -> None:
    data = {"id": "sale", "template": "sale", "audience": "all", "topic": "ofers"}
    with pytest.raises(DefinitionError) as caught:
        campaign_from_data(data, templates=TEMPLATES, segments=set(), now=1.0, topics={"offers"})
    assert caught.value.pointer == "/topic"
    assert caught.value.reason.startswith("no topic 'ofers': did you mean 'offers'?")
    data["topic"] = "offers"
    made = campaign_from_data(data, templates=TEMPLATES, segments=set(), now=1.0, topics={"offers"})
    assert made.topic == "offers"
