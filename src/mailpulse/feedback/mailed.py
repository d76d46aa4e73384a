"""Reports that arrive as mail in a provider's own format rather than RFC 3464 or RFC 5965:

- an Amazon SES notification mailed by SNS (an email subscription to the feedback topic): the
  same JSON `/webhooks/ses` takes (read by `webhooks.ses.ses_events`), as the body of a
  text/plain message, with SNS's line breaks (`!` and a newline every ~1000 characters);
- Hotmail's complaint before it wrote ARF: the complained-of message attached, marked
  `X-HmXmrOriginalRecipient` (the complainer), under a `complaint about message from` subject;
- Apple Mail's one-click unsubscribe: a message marked `X-Apple-Unsubscribe: true`, from the
  subscriber to the List-Unsubscribe mailto address, which RFC 5965 would call opt-out.

Each becomes the classification an ARF report or a DSN of the same news would: the ESP's
bounce is judged from its status and words by `classify_reply`, as the webhook's is.
"""

from __future__ import annotations

import re

import msgspec

from mailpulse.feedback.report import Report
from mailpulse.feedback.webhooks.model import EspEvent, Kind
from mailpulse.feedback.webhooks.ses import ses_events

# SNS mail wraps long lines by inserting "!" and a line break with a space after it.
_SNS_WRAP = re.compile(r"!\r?\n ")
_SES_JSON = re.compile(r'\{\s*"(?:notificationType|eventType)"\s*:')
_SNS_ENVELOPE = re.compile(r'\{\s*"Type"\s*:\s*"Notification"')
_NOT_ENDED = -1


def ses_notification(report: Report) -> list[EspEvent] | None:
    """The SES events a mailed SNS notification holds (those it acts on); None when the
    message is not one."""
    text = _SNS_WRAP.sub("", report.text)
    text = _sns_message(text) or text
    notification = _json_object(text, _SES_JSON)
    if notification is None:
        return None
    sns_id = report.headers.get("message-id", "")[:200]
    events = ses_events(notification, sns_id)
    return [e for e in events if e.kind != Kind.IGNORED] or None


def _sns_message(text: str) -> str | None:
    """The `Message` of a whole SNS notification mailed as JSON (an HTTP-style envelope in
    the body), or None when the text holds none."""
    found = _json_object(text, _SNS_ENVELOPE)
    if found is None:
        return None
    try:
        envelope = msgspec.json.decode(found)
    except (msgspec.DecodeError, RecursionError):
        return None
    message = envelope.get("Message") if isinstance(envelope, dict) else None
    return message if isinstance(message, str) else None


def _json_object(text: str, opening: re.Pattern[str]) -> str | None:
    """The first JSON object in `text` that begins as `opening` matches, through its closing
    brace; None when there is none or it is cut before its end."""
    start = opening.search(text)
    if start is None:
        return None
    end = _object_end(text, start.start())
    return None if end == _NOT_ENDED else text[start.start() : end]


def _object_end(text: str, start: int) -> int:
    """Where the JSON object starting at `start` ends (past its closing brace)."""
    depth, quoted, escaped = 0, False, False
    for at in range(start, len(text)):
        char = text[at]
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return at + 1
    return _NOT_ENDED


def legacy_complaint(report: Report) -> tuple[str, list[str]] | None:
    """(feedback type, complainers) of a complaint in a pre-ARF format; None otherwise."""
    if report.headers.get("x-apple-unsubscribe", "").strip().lower() == "true":
        return "opt-out", [report.sender] if report.sender else []
    complainer = report.original_headers.get("x-hmxmroriginalrecipient", "")
    if complainer:
        return "abuse", [complainer]
    return None
