"""The classifier on the RFCs' examples and on bounces as Postfix, Exim, qmail, Microsoft and
Gmail write them (messages/, see its README): per recipient the address, action, status,
reply code, reason and decision."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpulse.feedback.classify import Kind, classify_bytes
from tests.feedback.builders import arf_report, postfix_dsn

MESSAGES = Path(__file__).parent / "messages"
RETURNED = b"From: Shop <hello@shop.test>\r\nTo: ana@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"


def classify_file(name: str):
    return classify_bytes((MESSAGES / name).read_bytes())


def seen(name: str) -> list[tuple]:
    return [
        (r.address, r.action, r.status, r.smtp_code, r.reason, r.decision)
        for r in classify_file(name).recipients
    ]


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        # RFC 3464: a 4.0.0 that failed for good (it expired) is still not the address's fault.
        (
            "rfc3464-simple.eml",
            "dsn",
            [("louisl@larry.slip.umd.edu", "failed", "4.0.0", 426, "networkerror", "soft")],
        ),
        (
            "rfc3464-multi.eml",
            "dsn",
            [
                ("arathib@vnet.ibm.com", "failed", "5.0.0", 550, "undefined", "soft"),
                ("johnh@hpnjld.njd.hp.com", "delayed", "4.0.0", None, "undefined", "soft"),
                ("wsnell@sdcc13.ucsd.edu", "failed", "5.0.0", 550, "userunknown", "hard"),
            ],
        ),
        (
            "rfc3464-delayed.eml",
            "dsn",
            [("someone@example.net", "delayed", "4.4.1", 421, "networkerror", "soft")],
        ),
        (
            "postfix-04.eml",
            "dsn",
            [("kijitora@example.co.jp", "failed", "5.1.1", 550, "userunknown", "hard")],
        ),
        (
            "gmail-dsn.eml",
            "dsn",
            [("nobody.here@gmail.com", "failed", "5.1.1", 550, "userunknown", "hard")],
        ),
        # A block of the sender's network says nothing about the address.
        (
            "microsoft-policy.eml",
            "dsn",
            [("reader@contoso.com", "failed", "5.7.1", 550, "blocked", "soft")],
        ),
        # Mailbox full is transient even when a server sends it as 5.2.2 (RFC 3463).
        (
            "office365-12.eml",
            "dsn",
            [("kijitora@cr.neko.nyaan.jp", "failed", "5.2.2", 550, "mailboxfull", "soft")],
        ),
        # Bounces in words: the status and reply code read from the server's reply.
        (
            "office365-01.eml",
            "text",
            [("kijitora@example.com", "failed", "5.1.10", 550, "userunknown", "hard")],
        ),
        (
            "exim-02.eml",
            "text",
            [
                ("kijitora@example.jp", "failed", "5.1.1", 550, "userunknown", "hard"),
                ("sabatora@example.jp", "failed", "5.2.1", 550, "userunknown", "hard"),
            ],
        ),
        (
            "gmail-01.eml",
            "text",
            [("userunknown@example.jp", "failed", "5.1.1", 550, "userunknown", "hard")],
        ),
        (
            "gmail-06.eml",
            "text",
            [("kijitora@example.jp", "delayed", "4.2.2", 450, "mailboxfull", "soft")],
        ),
        (
            "qmail-01.eml",
            "text",
            [("kijitora@example.ne.jp", "failed", "5.5.0", 550, "userunknown", "hard")],
        ),
    ],
)
def test_bounces_are_classified_per_recipient(name: str, source: str, expected: list) -> None:
    result = classify_file(name)
    assert (result.kind, result.source) == (Kind.BOUNCE, source)
    assert seen(name) == expected


def test_an_arf_report_is_a_complaint_with_its_feedback_type() -> None:
    result = classify_file("rfc5965-arf.eml")
    assert (result.kind, result.source, result.feedback_type) == ("complaint", "arf", "abuse")
    assert result.user_agent == "SomeGenerator/1.0"
    assert [(r.address, r.decision) for r in result.recipients] == [
        ("user@example.com", "complaint")
    ]


def test_an_out_of_office_reply_is_an_auto_reply_not_a_bounce() -> None:
    result = classify_file("vacation.eml")
    assert result.kind == Kind.AUTO_REPLY and result.recipients == []


def test_a_dsn_marked_auto_submitted_is_still_a_bounce() -> None:
    # RFC 3834 asks DSNs to carry Auto-Submitted too: the report decides, not the header.
    assert b"Auto-Submitted: auto-replied" in (MESSAGES / "gmail-dsn.eml").read_bytes()
    assert classify_file("gmail-dsn.eml").kind == Kind.BOUNCE


def test_the_returned_messages_id_and_key_are_read() -> None:
    result = classify_file("gmail-dsn.eml")
    assert result.original_message_id == "<f3b2c1d0e9a8b7c6d5e4f3a2b1c0d9e8@shop.example.com>"
    assert result.original_key == "campaign:weekly:user:nobody"


def test_a_person_writing_back_is_neither_bounce_nor_auto_reply() -> None:
    reply = (
        b"From: Ana <ana@example.org>\r\nTo: bounces-x@shop.test\r\nSubject: Re: Hi\r\n\r\n"
        b"<bob@example.org>: please add him too.\r\n"
    )
    assert classify_bytes(reply).kind == Kind.UNKNOWN


@pytest.mark.parametrize(
    ("status", "diagnostic", "reason", "decision"),
    [
        ("5.1.1", "550 5.1.1 no such user", "userunknown", "hard"),
        ("5.1.2", "550 5.1.2 bad destination system: no such domain", "hostunknown", "hard"),
        ("5.1.6", "551 5.1.6 user has moved", "hasmoved", "hard"),
        ("5.1.10", "556 5.1.10 recipient domain has a null MX", "notaccept", "hard"),
        ("4.2.2", "452 4.2.2 mailbox full", "mailboxfull", "soft"),
        ("5.2.2", "552 5.2.2 over quota", "mailboxfull", "soft"),
        ("5.7.1", "550 5.7.1 message rejected as spam", "spamdetected", "soft"),
        (
            "5.7.26",
            "550 5.7.26 unauthenticated email is not accepted (DMARC)",
            "authfailure",
            "soft",
        ),
        ("4.4.7", "delivery time expired", "expired", "soft"),
        ("4.7.0", "421 4.7.0 try again later, rate limit exceeded", "speeding", "soft"),
        # A hard reason in a transient reply is soft: it may work another time.
        ("4.1.1", "450 4.1.1 user unknown", "userunknown", "soft"),
        # Refused after DATA: the server had taken the recipient, so it was not the address.
        ("5.1.1", "550 5.1.1 user unknown (in reply to end of DATA command)", "filtered", "soft"),
        # In reply to DATA, "unknown user" alone is not enough: Japanese carriers say it there
        # for a recipient's own sender filter.
        (
            "5.0.0",
            "550 Unknown user ana@example.com (in reply to DATA command)",
            "filtered",
            "soft",
        ),
        # But providers that check recipients only there have words for an unknown one alone.
        (
            "5.0.0",
            "554 delivery error: dd This user doesn't have a yahoo.com account (ana@yahoo.com)"
            " [0] (in reply to DATA command)",
            "userunknown",
            "hard",
        ),
        (
            "5.5.0",
            "550 5.5.0 Adresse destinataire invalide. Invalid recipient. LPN007_416"
            " (in reply to DATA command)",
            "userunknown",
            "hard",
        ),
        (
            "5.5.0",
            # Another of La Poste's numbers (426: the account is blocked) is not.
            "550 5.5.0 Le compte du destinataire est bloque. LPN007_426 (in reply to DATA command)",
            "protocolproblem",
            "soft",
        ),
        # Refused at MAIL FROM: about our sender, never the recipient.
        ("5.1.0", "SMTP error after MAIL FROM: 553 5.1.0 no such user", "rejected", "soft"),
    ],
)
def test_postfix_dsns_by_status(status: str, diagnostic: str, reason: str, decision: str) -> None:
    dsn = postfix_dsn(
        RETURNED,
        to="bounces-x@shop.test",
        recipient="ana@example.com",
        status=status,
        diagnostic=diagnostic,
        action="delayed" if status.startswith("4") else "failed",
    )
    (recipient,) = classify_bytes(dsn).recipients
    assert (recipient.address, recipient.status) == ("ana@example.com", status)
    assert (recipient.reason, recipient.decision) == (reason, decision)


def test_a_built_arf_report_names_its_complainant() -> None:
    report = arf_report(RETURNED, to="bounces-x@shop.test", recipient="ana@example.com")
    result = classify_bytes(report)
    assert (result.kind, result.feedback_type) == ("complaint", "abuse")
    assert [r.address for r in result.recipients] == ["ana@example.com"]
    redacted = classify_bytes(arf_report(RETURNED, to="bounces-x@shop.test", recipient=None))
    assert [r.address for r in redacted.recipients] == [""]
