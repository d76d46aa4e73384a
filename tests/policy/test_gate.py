from datetime import datetime, time

import pytest

from mailpulse.policy import FrequencyCap, QuietHours, SendPolicy, check_send, remember_marketing
from mailpulse.types import Contact

NIGHT = QuietHours(time(21, 0), time(8, 0))


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def contact(**traits: object) -> Contact:
    return Contact(id="c1", email="c1@example.com", traits=dict(traits))


def test_no_address_no_message() -> None:
    verdict = check_send(Contact(id="c1", email_error="invalid email: x"), "transactional")
    assert (verdict.allowed, verdict.reason) == (False, "invalid email: x")


@pytest.mark.parametrize(
    ("local", "held_until"),
    [
        ("2026-06-01T22:30:00+02:00", "2026-06-02T08:00:00+02:00"),
        ("2026-06-02T07:59:00+02:00", "2026-06-02T08:00:00+02:00"),
        ("2026-06-02T08:00:00+02:00", None),
        ("2026-06-02T20:59:00+02:00", None),
    ],
)
def test_quiet_hours_across_midnight_on_the_contacts_clock(
    local: str, held_until: str | None
) -> None:
    policy = SendPolicy(quiet_hours=NIGHT)
    verdict = check_send(contact(timezone="Europe/Berlin"), "marketing", at(local), policy)
    assert verdict.allowed
    assert verdict.hold_until == (None if held_until is None else at(held_until))


def test_quiet_hours_within_one_day_and_the_project_default_zone() -> None:
    lunch = SendPolicy(quiet_hours=QuietHours(time(12), time(13)), default_timezone="Asia/Tokyo")
    verdict = check_send(contact(), "marketing", at("2026-06-01T12:15:00+09:00"), lunch)
    assert verdict.hold_until == at("2026-06-01T13:00:00+09:00")


def test_transactional_messages_are_neither_held_nor_capped() -> None:
    policy = SendPolicy(quiet_hours=NIGHT, frequency_cap=FrequencyCap(1, 86400))
    c = contact(timezone="Europe/Berlin")
    c.marketing_sent = [at("2026-06-01T22:00:00+02:00")]
    assert (
        check_send(c, "transactional", at("2026-06-01T23:00:00+02:00"), policy).hold_until is None
    )
    assert check_send(c, "transactional", at("2026-06-01T23:00:00+02:00"), policy).allowed


def test_the_frequency_cap_counts_what_was_sent_within_its_period() -> None:
    policy = SendPolicy(frequency_cap=FrequencyCap(2, 3600))
    c = contact()
    for now in (0.0, 100.0):
        assert check_send(c, "marketing", now, policy).allowed
        remember_marketing(c, now, policy)
    capped = check_send(c, "marketing", 200.0, policy)
    assert not capped.allowed and "frequency cap: 2" in capped.reason
    assert check_send(c, "marketing", 3600.5, policy).allowed  # the first has aged out
    remember_marketing(c, 3600.5, policy)
    assert c.marketing_sent == [100.0, 3600.5]  # only what the cap can still see is kept


@pytest.mark.parametrize(
    ("not_before", "held_until"),
    [
        # A campaign at 10:00 local, asked at noon the day before: held until then.
        ("2026-06-02T10:00:00+02:00", "2026-06-02T10:00:00+02:00"),
        # At 22:00 local: quiet then, so held until the quiet hours end, not sent at 22:00.
        ("2026-06-02T22:00:00+02:00", "2026-06-03T08:00:00+02:00"),
        # Already past: no hold.
        ("2026-06-01T09:00:00+02:00", None),
    ],
)
def test_a_later_send_time_is_judged_at_that_time(not_before: str, held_until: str | None) -> None:
    policy = SendPolicy(quiet_hours=NIGHT)
    now = at("2026-06-01T12:00:00+02:00")
    verdict = check_send(
        contact(timezone="Europe/Berlin"), "marketing", now, policy, not_before=at(not_before)
    )
    assert verdict.allowed
    assert verdict.hold_until == (None if held_until is None else at(held_until))
