"""The suppression rules: what each entry blocks, how an address matches its entry whatever
its case and spacing, which SMTP replies mean a bad address, and the checks a person's entry
(an import row, an API request) meets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.audience import normalize_email
from mailpulse.policy import SuppressionIndex, check_send
from mailpulse.policy.suppression import (
    EntryError,
    address_hash,
    canonical_address,
    entry,
    entry_from_fields,
    is_bad_address,
)
from mailpulse.types import Contact

NOW = 1_795_000_000.0  # 2026-11-18


def contact(email: str = "ana@example.com") -> Contact:
    return Contact(id="c1", email=email)


def allowed(found: list, message_class: str, topic: str | None = None) -> bool:
    return check_send(contact(), message_class, NOW, topic=topic, suppressions=found).allowed


@pytest.mark.parametrize(
    ("reason", "marketing", "transactional"),
    [
        ("hard_bounce", False, False),
        ("complaint", False, False),
        ("manual", False, False),
        ("erased", False, False),
        ("unsubscribe", False, True),
    ],
)
def test_what_a_global_entry_blocks(reason: str, marketing: bool, transactional: bool) -> None:
    found = [entry("ana@example.com", reason, at=NOW)]
    assert allowed(found, "marketing", "news") is marketing
    assert allowed(found, "marketing") is marketing
    assert allowed(found, "transactional") is transactional


@pytest.mark.parametrize("reason", ["unsubscribe", "manual"])
def test_a_topic_entry_blocks_that_topics_marketing_only(reason: str) -> None:
    found = [entry("ana@example.com", reason, topic="news", at=NOW)]
    assert not allowed(found, "marketing", "news")
    assert allowed(found, "marketing", "offers")
    assert allowed(found, "marketing")  # a message of no topic
    assert allowed(found, "transactional", "news")


def test_the_reason_names_the_entry_and_since_when() -> None:
    bounced = entry(
        "ana@example.com", "hard_bounce", detail="550 5.1.1 no such user", at=1795000000.0
    )
    verdict = check_send(contact(), "marketing", NOW, suppressions=[bounced])
    assert verdict.reason == (
        "suppressed: hard_bounce (550 5.1.1 no such user) since 2026-11-18T11:06:40Z"
    )
    assert verdict.suppressed_by == bounced
    news = entry("ana@example.com", "unsubscribe", topic="news", at=1795000000.0)
    verdict = check_send(contact(), "marketing", NOW, topic="news", suppressions=[news])
    assert verdict.reason == "suppressed for topic news: unsubscribe since 2026-11-18T11:06:40Z"


def test_the_strongest_blocking_entry_is_named() -> None:
    found = [
        entry("ana@example.com", "unsubscribe", topic="news", at=NOW),
        entry("ana@example.com", "unsubscribe", at=NOW),
        entry("ana@example.com", "complaint", at=NOW),
    ]
    verdict = check_send(contact(), "marketing", NOW, topic="news", suppressions=found)
    assert verdict.suppressed_by is not None and verdict.suppressed_by.reason == "complaint"


def test_no_address_is_refused_before_any_entry_is_asked() -> None:
    verdict = check_send(Contact(id="c1", email_error="invalid email: x"), "marketing")
    assert verdict.reason == "invalid email: x"


_LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._", min_size=1, max_size=20)


@given(
    local=_LOCAL.filter(lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s),
    domain=st.sampled_from(["example.com", "mail.example.org", "xn--bcher-kva.example"]),
    upper=st.lists(st.booleans(), min_size=40, max_size=40),
    before=st.sampled_from(["", " ", "  ", "\t"]),
    after=st.sampled_from(["", " ", "\n"]),
)
def test_an_address_in_any_case_and_spacing_matches_its_entry(
    local: str, domain: str, upper: list[bool], before: str, after: str
) -> None:
    address = f"{local}@{domain}"
    written = "".join(c.upper() if up else c for c, up in zip(address, upper, strict=False))
    written += address[len(upper) :]
    canonical, problem = canonical_address(before + written + after)
    assert problem is None and canonical is not None
    stored = entry(canonical, "hard_bounce", at=NOW)
    # As a profile keeps it: normalized, its local part in the case it was written in.
    profile_email, _ = normalize_email(written.strip())
    assert profile_email is not None
    assert SuppressionIndex([stored]).of(profile_email) == [stored]
    assert address_hash(profile_email) == stored.address_hash
    verdict = check_send(contact(profile_email), "transactional", suppressions=[stored])
    assert not verdict.allowed


@pytest.mark.parametrize(
    ("code", "enhanced", "bad"),
    [
        (550, "5.1.1", True),
        (550, "5.1.2", True),
        (556, "5.1.10", True),
        (553, "5.1.3", True),
        (550, "5.7.1", False),  # a policy or content block
        (552, "5.2.2", False),  # a full mailbox
        (552, "5.3.4", False),  # too big
        (550, "", False),  # no enhanced status: too little to tell
        (450, "4.1.1", False),  # not permanent
        (553, "5.1.7", False),  # our sender address, not the recipient's
    ],
)
def test_which_replies_mean_a_bad_address(code: int, enhanced: str, bad: bool) -> None:
    assert is_bad_address(code, enhanced) is bad


def test_an_entry_from_a_persons_fields() -> None:
    made = entry_from_fields(
        {"address": "  Ana@Example.COM ", "topic": "news", "reason": "unsubscribe"},
        source="import",
        now=NOW,
    )
    assert (made.address, made.topic, made.reason, made.source, made.created_at) == (
        "ana@example.com",
        "news",
        "unsubscribe",
        "import",
        NOW,
    )
    manual = entry_from_fields(
        {"address": "bo@example.com", "created_at": "2026-01-02T03:04:05Z"}, source="x", now=NOW
    )
    assert manual.reason == "manual" and manual.created_at == 1767323045.0
    hashed = address_hash("gone@example.com")
    erased = entry_from_fields({"address_hash": hashed, "reason": "erased"}, source="", now=NOW)
    assert (erased.address, erased.address_hash) == (None, hashed)
    by_address = entry_from_fields(
        {"address": "gone@example.com", "reason": "erased"}, source="", now=NOW
    )
    assert by_address == erased


@pytest.mark.parametrize(
    ("fields", "field", "said"),
    [
        ({"address": "not-an-address"}, "address", "invalid email"),
        ({"address": 7}, "address", "not text"),
        ({}, "address", "no address"),
        ({"address": "a@example.com", "reason": "bored"}, "reason", "not one of hard_bounce"),
        (
            {"address": "a@example.com", "reason": "hard_bounce", "topic": "news"},
            "topic",
            "take no topic",
        ),
        ({"address_hash": "ab" * 32, "reason": "manual"}, "address", "only an erased one may be"),
        ({"address_hash": "xyz", "reason": "erased"}, "address_hash", "64 hex digits"),
        (
            {"address": "a@example.com", "address_hash": "ab" * 32},
            "address_hash",
            "not the SHA-256",
        ),
        ({"address": "a@example.com", "created_at": "yesterday"}, "created_at", "not ISO 8601"),
        ({"address": "a@example.com", "created_at": NOW * 2}, "created_at", "up to now"),
        ({"address": "a@example.com", "topic": "a\nb"}, "topic", "one line"),
        ({"address": "a@example.com", "colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_fields_say_what_is_wrong(fields: dict, field: str, said: str) -> None:
    with pytest.raises(EntryError) as caught:
        entry_from_fields(fields, source="import", now=NOW)
    assert caught.value.field == field and said in caught.value.reason


def test_a_lift_removes_an_unsubscribe_entry_and_nothing_stronger() -> None:
    address = "ann@example.com"
    key = address_hash(address)
    index = SuppressionIndex(
        [
            entry(address, "unsubscribe", topic="offers", at=1.0),
            entry(address, "unsubscribe", at=1.0),
            entry(address, "manual", topic="news", at=1.0),
        ]
    )
    index.lift(key, "offers")
    index.lift(key, "news")  # an operator's entry stands
    index.lift(key, "missing")
    assert sorted((e.topic, e.reason) for e in index.of(address)) == [
        ("", "unsubscribe"),
        ("news", "manual"),
    ]
    index.add(entry(address, "hard_bounce", at=2.0))
    index.lift(key, "")  # the bounce replaced the unsubscribe: nothing is lifted
    assert sorted((e.topic, e.reason) for e in index.of(address)) == [
        ("", "hard_bounce"),
        ("news", "manual"),
    ]
