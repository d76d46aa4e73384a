"""Bounces and complaints as mail servers write them, for tests that send them to mailpulse:
a DSN laid out the way Postfix lays one out, and an RFC 5965 feedback report."""

from __future__ import annotations

from email import message_from_bytes, policy


def _headers_of(returned: bytes) -> str:
    head = returned.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    return head.decode("utf-8", errors="replace").replace("\r\n", "\n")


def postfix_dsn(
    returned: bytes,
    *,
    to: str,
    recipient: str,
    status: str = "5.1.1",
    diagnostic: str = "",
    action: str = "failed",
    original_recipient: str | None = None,
) -> bytes:
    """What Postfix sends back to `to` (a return path) when `recipient` refused `returned`."""
    diagnostic = diagnostic or (
        f"550 {status} <{recipient}>: Recipient address rejected: User unknown in local "
        "recipient table"
    )
    original = original_recipient if original_recipient is not None else recipient
    text = f"""\
Return-Path: <>
Received: by mx.remote.test (Postfix)
	id 4XyZ1k2Lmnz9sPq; Tue,  5 Nov 2024 10:14:03 +0000 (UTC)
Date: Tue,  5 Nov 2024 10:14:03 +0000 (UTC)
From: MAILER-DAEMON@mx.remote.test (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4XyZ1k2Lmnz9sPq.1730801643/mx.remote.test"
Content-Transfer-Encoding: 8bit
Message-Id: <20241105101403.4XyZ1k2Lmnz9sPq@mx.remote.test>

This is a MIME-encapsulated message.

--4XyZ1k2Lmnz9sPq.1730801643/mx.remote.test
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mx.remote.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<{recipient}>: host mailstore.remote.test[192.0.2.25] said: {diagnostic}
    (in reply to RCPT TO command)

--4XyZ1k2Lmnz9sPq.1730801643/mx.remote.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.remote.test
X-Postfix-Queue-ID: 4XyZ1k2Lmnz9sPq
X-Postfix-Sender: rfc822; {to}
Arrival-Date: Tue,  5 Nov 2024 10:14:02 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{original}
Action: {action}
Status: {status}
Remote-MTA: dns; mailstore.remote.test
Diagnostic-Code: smtp; {diagnostic}

--4XyZ1k2Lmnz9sPq.1730801643/mx.remote.test
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

{_headers_of(returned)}
--4XyZ1k2Lmnz9sPq.1730801643/mx.remote.test--
"""
    return text.replace("\n", "\r\n").encode()


def arf_report(
    returned: bytes,
    *,
    to: str,
    recipient: str | None,
    feedback_type: str = "abuse",
) -> bytes:
    """An RFC 5965 report of `returned`, as a mailbox provider's feedback loop sends it to
    `to`; `recipient` (the complainant) as Original-Rcpt-To, or left out (redacted)."""
    rcpt = f"Original-Rcpt-To: <{recipient}>\n" if recipient else ""
    text = f"""\
From: Feedback Loop <fbl@isp.test>
Date: Tue, 5 Nov 2024 11:00:00 +0000
Subject: FW: {returned_subject(returned)}
To: <{to}>
MIME-Version: 1.0
Message-ID: <fbl-report-1@isp.test>
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_arf_boundary"

--part1_arf_boundary
Content-Type: text/plain; charset="US-ASCII"

This is an email abuse report for an email message received from IP
192.0.2.10 on Tue, 5 Nov 2024 10:00:00 +0000.

--part1_arf_boundary
Content-Type: message/feedback-report

Feedback-Type: {feedback_type}
User-Agent: ISP-FBL/2.0
Version: 1
Original-Mail-From: <{to}>
{rcpt}Arrival-Date: Tue, 5 Nov 2024 10:00:00 +0000
Source-IP: 192.0.2.10
Reported-Domain: shop.test

--part1_arf_boundary
Content-Type: message/rfc822
Content-Disposition: inline

{returned.decode("utf-8", errors="replace").replace(chr(13) + chr(10), chr(10))}
--part1_arf_boundary--
"""
    return text.replace("\n", "\r\n").encode()


def returned_subject(returned: bytes) -> str:
    return str(message_from_bytes(returned, policy=policy.default).get("subject", ""))
