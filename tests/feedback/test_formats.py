"""The classifier on the forms that are not plain RFC 3464 or 5965, and on the general rules
the corpus test measures: where a status was read, what the stage of a refusal says, class 4
and class 3 statuses, and reports mailed in a provider's own format."""

from __future__ import annotations

import json

import pytest

from mailpulse.feedback.classify import Kind, StatusSource, classify_bytes
from tests.feedback.builders import postfix_dsn

ANA = "ana@example.com"
RETURNED = (
    b"From: Shop <hello@shop.test>\r\nTo: ana@example.com\r\nSubject: Hi\r\n"
    b"Message-ID: <00112233445566778899aabbccddeeff@shop.test>\r\n"
    b"X-Mailpulse-Key: campaign:winter:user:ana\r\n\r\nHello\r\n"
)


def dsn(status: str, diagnostic: str, action: str = "failed") -> bytes:
    made = postfix_dsn(
        RETURNED, to="b@shop.test", recipient=ANA, status=status, diagnostic=diagnostic
    ).replace(b"Action: failed", f"Action: {action}".encode())
    # A local delivery program's words are typed so (RFC 3464 §2.3.6).
    return made.replace(b"Diagnostic-Code: smtp; procmail", b"Diagnostic-Code: x-unix; procmail")


def judged(data: bytes) -> tuple[str, str, str, str]:
    [one] = classify_bytes(data).recipients
    return one.status, one.status_source, one.reason, one.decision


@pytest.mark.parametrize(
    ("status", "diagnostic", "action", "expected"),
    [
        # The remote server's reply, then the Status field, say where the status came from.
        (
            "5.0.0",
            "550 5.1.1 <a>: user unknown",
            "failed",
            ("5.1.1", "reply", "userunknown", "hard"),
        ),
        ("5.1.1", "550 no such user here", "failed", ("5.1.1", "dsn", "userunknown", "hard")),
        # X.4.7 gives way to the code of the actual problem (RFC 3463 §3.5).
        (
            "4.4.7",
            "554 4.4.7 Message expired <421 4.4.2 Connection timed out>",
            "failed",
            ("4.4.2", "reply", "expired", "soft"),
        ),
        # A mail system status (X.3): "user unknown" from a system in trouble decides nothing.
        (
            "5.3.0",
            "550-'Unknown user ana@example.com'",
            "failed",
            ("5.3.0", "dsn", "systemerror", "soft"),
        ),
        # 4.1.1 while the sender still tries is soft; once it gave up, the address is bad.
        (
            "4.1.1",
            "450 4.1.1 <a>: User unknown",
            "delayed",
            ("4.1.1", "reply", "userunknown", "soft"),
        ),
        (
            "4.1.1",
            "450 4.1.1 <a>: User unknown",
            "failed",
            ("4.1.1", "reply", "userunknown", "hard"),
        ),
        # A local program's words ("No such user") are about the program, not the address.
        (
            "5.1.1",
            "procmail: Couldn't create /var/mail/x: No such user",
            "failed",
            ("5.1.1", "dsn", "mailererror", "soft"),
        ),
        # The reporting MTA's gloss gives way to the remote reply inside it.
        (
            "5.0.0",
            "5.1.0 - Unknown address error 550-'5.7.1 <x>... Access denied'",
            "failed",
            ("5.7.1", "reply", "blocked", "soft"),
        ),
    ],
)
def test_status_source_and_decision(status: str, diagnostic: str, action: str, expected) -> None:
    assert judged(dsn(status, diagnostic, action)) == expected


def text_bounce(words: str, subject: str = "Mail delivery failed") -> bytes:
    return (
        f"From: Mail Delivery System <Mailer-Daemon@mx.remote.test>\r\nTo: b@shop.test\r\n"
        f"Subject: {subject}\r\n\r\nThis message was created automatically by mail delivery "
        f"software.\r\n\r\n  {ANA}\r\n    {words}\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        # No status stated: the category's own code, in the failure's class.
        ("Recipient address rejected: User unknown", ("5.1.1", "implied", "userunknown", "hard")),
        ("retry timeout exceeded", ("4.4.7", "implied", "expired", "soft")),
        # Refused before the recipient was heard: about the sender or the connection.
        (
            "SMTP error from remote mail server after MAIL FROM:<s@shop.test>: 553 no such user",
            ("5.1.8", "implied", "rejected", "soft"),
        ),
        (
            "SMTP error from remote mail server after initial connection: 554 go away",
            ("5.7.1", "implied", "blocked", "soft"),
        ),
        # Nothing recognised: the class alone (RFC 3463 X.0.0).
        ("something odd happened", ("5.0.0", "implied", "undefined", "soft")),
    ],
)
def test_a_bounce_in_words_implies_its_status(words: str, expected) -> None:
    assert judged(text_bounce(words)) == expected


SENDMAIL_TRANSCRIPT = """\
   ----- Transcript of session follows -----
... while talking to mx.remote.test.:
>>> DATA
<<< 550 {status} <ana@example.com>... User unknown
"""


@pytest.mark.parametrize(("status", "decision"), [("5.2.0", "soft"), ("5.1.1", "hard")])
def test_a_reply_after_the_data_command_yields_to_a_status_naming_the_address(
    status: str, decision: str
) -> None:
    """With PIPELINING the replies to RCPT follow the client's DATA: a status that says the
    address is bad still decides; words alone there are a filter's."""
    transcript = SENDMAIL_TRANSCRIPT.format(status=status).replace("\n", "\r\n").encode()
    message = dsn(status, f"550 {status} <ana@example.com>... User unknown")
    message = message.replace(b"The mail system\r\n", b"The mail system\r\n\r\n" + transcript, 1)
    assert judged(message)[3] == decision


def sns_mail(notification: dict, *, envelope: bool = False) -> bytes:
    body = json.dumps(notification)
    if envelope:  # the whole SNS message, as a raw HTTP-style delivery mailed
        body = json.dumps({"Type": "Notification", "MessageId": "m-1", "Message": body})
    # SNS's mail wraps lines past ~1000 characters with "!" and a newline and a space.
    wrapped = "!\r\n ".join(body[i : i + 200] for i in range(0, len(body), 200))
    return (
        "From: AWS Notifications <no-reply@sns.amazonaws.com>\r\nTo: ops@shop.test\r\n"
        "Subject: AWS Notification Message\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
        f"{wrapped}\r\n\r\n--\r\nIf you wish to stop receiving notifications ...\r\n"
    ).encode()


MAIL = {
    "messageId": "ses-1",
    "destination": [ANA],
    "headers": [
        {"name": "Message-ID", "value": "<00112233445566778899aabbccddeeff@shop.test>"},
        {"name": "X-Mailpulse-Key", "value": "campaign:winter:user:ana"},
    ],
}


@pytest.mark.parametrize("envelope", [False, True])
def test_an_ses_notification_mailed_by_sns_is_read_as_the_webhook_reads_it(envelope: bool) -> None:
    bounce = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": ANA,
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 unknown",
                }
            ],
        },
        "mail": MAIL,
    }
    found = classify_bytes(sns_mail(bounce, envelope=envelope))
    assert (found.kind, found.source, found.original_key) == (
        Kind.BOUNCE,
        "ses",
        "campaign:winter:user:ana",
    )
    [one] = found.recipients
    assert (one.address, one.status, one.decision) == (ANA, "5.1.1", "hard")
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": ANA}],
            "complaintFeedbackType": "abuse",
        },
        "mail": MAIL,
    }
    found = classify_bytes(sns_mail(complaint, envelope=envelope))
    assert (found.kind, found.feedback_type, found.recipients[0].address) == (
        Kind.COMPLAINT,
        "abuse",
        ANA,
    )
    delivery = {
        "notificationType": "Delivery",
        "delivery": {"recipients": [ANA], "smtpResponse": "250 2.6.0 Message received"},
        "mail": MAIL,
    }
    found = classify_bytes(sns_mail(delivery, envelope=envelope))
    assert (found.kind, found.recipients[0].status) == (Kind.DELIVERED, "2.6.0")


def test_hotmails_complaint_before_arf_is_an_abuse_report() -> None:
    message = (
        b"From: staff@hotmail.com\r\nTo: abuse@shop.test\r\n"
        b"Subject: complaint about message from 192.0.2.1\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
        b"X-HmXmrOriginalRecipient: ana@example.com\r\n" + RETURNED + b"\r\n--b--\r\n"
    )
    found = classify_bytes(message)
    assert (found.kind, found.feedback_type, found.recipients[0].address) == (
        Kind.COMPLAINT,
        "abuse",
        ANA,
    )
    assert found.original_key == "campaign:winter:user:ana"


def test_apple_mails_unsubscribe_is_an_opt_out_not_an_auto_reply() -> None:
    message = (
        b"From: ana@example.com\r\nTo: unsubscribe@shop.test\r\nSubject: unsubscribe\r\n"
        b"Auto-Submitted: auto-replied\r\nX-Apple-Unsubscribe: true\r\n\r\n"
        b"Apple Mail sent this email to unsubscribe from the message.\r\n"
    )
    found = classify_bytes(message)
    assert (found.kind, found.feedback_type, found.recipients[0].address) == (
        Kind.COMPLAINT,
        "opt-out",
        ANA,
    )


def test_implied_is_the_only_status_mailpulse_writes_itself() -> None:
    sources = {s.value for s in StatusSource}
    assert sources == {"reply", "dsn", "text", "implied", ""}
