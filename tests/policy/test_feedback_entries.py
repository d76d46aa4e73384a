"""The entries bounces and complaints call for: a hard bounce by the classifier's decision
(or, from mailpulse's own SMTP reply, by its status), a soft-bounce entry once the limit is
reached, a complaint for the feedback types that are one; each blocks every message."""

from __future__ import annotations

import pytest

from mailpulse.policy import check_send
from mailpulse.policy.suppression import bounce_entry, complaint_entry, soft_bounce_entry
from mailpulse.types import Contact

NOW = 1_795_000_000.0
DSN = {"key": "campaign:w:c1", "recipient": "Ana@Example.com", "source": "dsn"}


@pytest.mark.parametrize(
    ("properties", "hard"),
    [
        ({"bounce": "hard", "smtp_status": "5.1.1"}, True),
        ({"bounce": "hard"}, True),  # a DSN may give no reply code
        # The classifier read the words: a 5.1.1 at DATA is not the address's fault.
        ({"bounce": "soft", "smtp_code": 550, "smtp_status": "5.1.1"}, False),
        ({"smtp_code": 550, "smtp_status": "5.1.1"}, True),  # mailpulse's own SMTP reply
        ({"smtp_code": 550, "smtp_status": "5.7.1"}, False),
        ({"smtp_code": 550}, False),
    ],
)
def test_a_bounce_is_hard_by_the_decision_it_carries(properties: dict, hard: bool) -> None:
    found = bounce_entry({**DSN, **properties}, "other@example.com", NOW)
    assert (found is not None) is hard
    if found is not None:
        assert (found.address, found.reason) == ("ana@example.com", "hard_bounce")
        assert found.source == "bounce of campaign:w:c1"


def test_the_soft_bounce_entry_says_what_reached_the_limit() -> None:
    properties = {**DSN, "smtp_code": 452, "smtp_status": "4.2.2", "smtp_text": "mailbox full"}
    found = soft_bounce_entry(properties, None, NOW, "5/7d")
    assert found is not None and found.reason == "soft_bounce"
    assert found.detail == "soft bounces reached 5/7d, the last: 452 4.2.2 mailbox full"
    assert not check_send(
        Contact(id="c1", email="ana@example.com"), "transactional", NOW, suppressions=[found]
    ).allowed


@pytest.mark.parametrize(
    ("feedback_type", "reason"),
    [
        ("abuse", "complaint"),
        ("fraud", "complaint"),
        ("virus", "complaint"),
        ("other", "complaint"),
        ("", "complaint"),  # a report that does not say: taken as a complaint
        ("opt-out", "unsubscribe"),
        ("auth-failure", None),  # about authentication, not about the person
        ("not-spam", None),
    ],
)
def test_a_complaint_by_its_feedback_type(feedback_type: str, reason: str | None) -> None:
    properties = {**DSN, "feedback_type": feedback_type, "user_agent": "FBL/1"}
    found = complaint_entry(properties, None, NOW)
    assert (found.reason if found else None) == reason
    if found is not None and reason == "complaint":
        assert found.source == "complaint about campaign:w:c1"
        assert found.detail == f"{feedback_type or 'other'} report from FBL/1"


def test_an_event_without_a_readable_recipient_calls_for_nothing() -> None:
    assert complaint_entry({"feedback_type": "abuse", "recipient": "nobody"}, None, NOW) is None
    assert bounce_entry({"bounce": "hard"}, None, NOW) is None
