"""Hostile and broken input: the parser and the classifier give a result for anything, never
an exception (the inbound listener relies on it; its own tests send these over SMTP)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailpulse.feedback.classify import Kind, classify_bytes
from tests.feedback.builders import postfix_dsn

MESSAGES = Path(__file__).parent / "messages"
RETURNED = b"From: Shop <hello@shop.test>\r\nTo: ana@example.com\r\nSubject: Hi\r\n\r\nHello\r\n"

_pieces = st.sampled_from(
    [
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n",
        b"Content-Type: message/delivery-status\r\n",
        b"Content-Type: message/feedback-report\r\n",
        b"Content-Type: message/rfc822\r\n",
        b"Content-Type: text/plain; charset=x-unknown-charset\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"--b\r\n",
        b"--b--\r\n",
        b"\r\n",
        b"Final-Recipient: rfc822; a@b.example\r\n",
        b"Action: failed\r\nStatus: 5.1.1\r\n",
        b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n",
        b"Feedback-Type: abuse\r\nOriginal-Rcpt-To: <a@b.example>\r\n",
        b"Subject: =?utf-8?b?////?= =?x?q?=ZZ?=\r\n",
        b"From: MAILER-DAEMON@x\r\n",
        b"X-Failed-Recipients: a@b, , @, <>\r\n",
        b"\xff\xfe\x00\x80 bytes \xc3\x28\r\n",
        b"    folded continuation\r\n",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert classify_bytes(data).kind in set(Kind)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_pieces | st.binary(max_size=40), max_size=40))
def test_report_shaped_garbage_never_raises(pieces: list[bytes]) -> None:
    assert classify_bytes(b"".join(pieces)).kind in set(Kind)


@given(st.integers(0, 4000))
def test_a_dsn_cut_anywhere_still_gives_a_result(at: int) -> None:
    dsn = postfix_dsn(RETURNED, to="bounces-x@shop.test", recipient="ana@example.com")
    result = classify_bytes(dsn[: at % len(dsn)])
    for recipient in result.recipients:
        # Whatever survives the cut (perhaps half an address), no other address is invented.
        assert "ana@example.com".startswith(recipient.address)


def test_a_truncated_report_without_its_status_part_reads_the_words() -> None:
    dsn = postfix_dsn(RETURNED, to="bounces-x@shop.test", recipient="ana@example.com")
    cut = dsn[: dsn.index(b"Content-Description: Delivery report")]
    result = classify_bytes(cut)
    assert result.kind == Kind.BOUNCE
    assert [(r.address, r.status, r.decision) for r in result.recipients] == [
        ("ana@example.com", "5.1.1", "hard")
    ]


@pytest.mark.parametrize("charset", ["x-no-such-charset", "utf-7", "iso-2022-jp", "utf-16"])
def test_wrong_and_strange_charsets_are_read_kindly(charset: str) -> None:
    dsn = postfix_dsn(
        RETURNED,
        to="bounces-x@shop.test",
        recipient="ana@example.com",
        diagnostic="550 5.1.1 Benutzer unbekannt \u00fc\u00e9",
    ).replace(b"charset=utf-8", f"charset={charset}".encode())
    (recipient,) = classify_bytes(dsn).recipients
    assert (recipient.address, recipient.status, recipient.decision) == (
        "ana@example.com",
        "5.1.1",
        "hard",
    )


def test_a_base64_delivery_status_part_is_decoded() -> None:
    import base64

    fields = (
        b"Reporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; ana@example.com\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
    )
    dsn = (
        b"From: MAILER-DAEMON@mx.test\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(fields)
        + b"--b--\r\n"
    )
    (recipient,) = classify_bytes(dsn).recipients
    assert (recipient.address, recipient.status, recipient.decision) == (
        "ana@example.com",
        "5.1.1",
        "hard",
    )


def test_a_ten_megabyte_bounce_is_classified() -> None:
    dsn = postfix_dsn(RETURNED, to="bounces-x@shop.test", recipient="ana@example.com")
    padding = (b"X" * 998 + b"\r\n") * (10 * 1024 * 1024 // 1000)
    big = dsn.replace(
        b"\r\n--4XyZ1k2Lmnz9sPq.1730801643/mx.remote.test--",
        b"\r\n" + padding + b"--4XyZ1k2Lmnz9sPq.1730801643/mx.remote.test--",
    )
    assert len(big) > 10 * 1024 * 1024
    (recipient,) = classify_bytes(big).recipients
    assert (recipient.address, recipient.decision) == ("ana@example.com", "hard")


def test_thousands_of_recipient_groups_are_capped() -> None:
    groups = b"".join(
        b"Final-Recipient: rfc822; u%d@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n" % n
        for n in range(5000)
    )
    dsn = (
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
        + groups
        + b"--b--\r\n"
    )
    assert len(classify_bytes(dsn).recipients) == 1000


# -- reports mailed in a provider's own format (feedback.mailed) -------------------------------

SES_BOUNCE = (
    '{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",'
    '"bouncedRecipients":[{"emailAddress":"ana@example.com","status":"5.1.1",'
    '"diagnosticCode":"smtp; 550 5.1.1 user unknown"}]},"mail":{"messageId":"m"}}'
)
SNS_HEAD = (
    b"From: AWS Notifications <no-reply@sns.amazonaws.com>\r\nTo: ops@shop.test\r\n"
    b"Subject: AWS Notification Message\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
)
_ses_pieces = st.sampled_from(
    [
        '{"notificationType":"Bounce",',
        '{"eventType":"Complaint",',
        '{"Type" : "Notification", "Message" : "',
        '"bounce":{"bounceType":"Permanent","bouncedRecipients":[',
        '{"emailAddress":"ana@example.com","status":"5.1.1"}',
        '"complaint":{"complainedRecipients":[{"emailAddress":1}]}',
        '"mail":{"headers":[{"name":"X-Mailpulse-Key","value":null}]}',
        "!\r\n ",
        "}",
        "]",
        "{" * 50,
        '\\"',
        ",",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ses_pieces | st.text(max_size=30), max_size=40))
def test_ses_shaped_garbage_in_a_mail_never_raises(pieces: list[str]) -> None:
    result = classify_bytes(SNS_HEAD + "".join(pieces).encode("utf-8", errors="replace"))
    assert result.kind in set(Kind)


@given(st.integers(0, len(SES_BOUNCE) - 1))
def test_a_mailed_ses_bounce_cut_anywhere_suppresses_nobody(at: int) -> None:
    """Half a notification is no notification: nothing hard comes of it."""
    result = classify_bytes(SNS_HEAD + SES_BOUNCE[:at].encode())
    assert all(r.decision != "hard" for r in result.recipients)


def test_a_ten_megabyte_mailed_notification_and_deep_nesting_are_read() -> None:
    padding = (b"X" * 998 + b"\r\n") * (10 * 1024 * 1024 // 1000)
    (recipient,) = classify_bytes(SNS_HEAD + SES_BOUNCE.encode() + b"\r\n" + padding).recipients
    assert (recipient.address, recipient.decision) == ("ana@example.com", "hard")
    # Nested deeper than any decoder recurses, whole within the text that is read.
    for outer in (
        '{{"notificationType":"Bounce","bounce":{}}}',
        '{{"Type":"Notification","Message":{}}}',
    ):
        nested = outer.format("[" * 30_000 + "]" * 30_000)
        assert classify_bytes(SNS_HEAD + nested.encode()).kind == Kind.UNKNOWN
