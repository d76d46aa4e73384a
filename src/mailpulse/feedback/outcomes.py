"""The lifecycle events a report about a send makes, whichever way it came: the inbound
listener (a DSN, an ARF report) or an ESP's webhook. One shape for the fold to read:

- `Email Bounced` / `Email Deferred`: the recipient, the classifier's `bounce` decision (hard or
  soft) and `category`, the `action`, `smtp_status`, `smtp_code` and `smtp_text` (the server's
  words without the code and status carried apart), the `remote_mta` when known, and `source`
  (how the report came: dsn, text, or the ESP's name);
- `Email Complained`: the recipient, the `feedback_type` (RFC 5965), the reporting
  `user_agent` and `source`.

Each is named by what identifies the report (`named`), so the same report delivered twice is
one event: the log drops the second.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec

from mailpulse.feedback.classify import RecipientResult
from mailpulse.feedback.report import MAX_FIELD
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.types import Event, SendIntent

# The reply code and status a diagnostic starts with, which the event carries apart.
_REPLY_START = re.compile(r"^\s*[245]\d\d(?:[ -]+[245]\.\d{1,3}\.\d{1,3})?[ -]+")


def failure_event(
    kind: Lifecycle,
    send: SendIntent,
    judged: RecipientResult,
    *,
    source: str,
    at: float,
    **more: Any,
) -> Event:
    """The `Email Bounced` or `Email Deferred` of `send`, as the classifier `judged` it."""
    said: dict[str, Any] = {
        "recipient": send.email,
        "bounce": judged.decision,
        "category": judged.reason,
        "action": judged.action,
        "smtp_status": judged.status,
        "smtp_text": _REPLY_START.sub("", judged.diagnostic)[:MAX_FIELD],
        "source": source,
    }
    if judged.smtp_code is not None:
        said["smtp_code"] = judged.smtp_code
    if judged.remote_mta:
        said["remote_mta"] = judged.remote_mta
    return lifecycle_event(kind, send, at, **said, **more)


def complaint_event(
    send: SendIntent,
    *,
    feedback_type: str,
    user_agent: str,
    source: str,
    at: float,
    **more: Any,
) -> Event:
    """The `Email Complained` of `send`."""
    said = {
        "recipient": send.email,
        "feedback_type": feedback_type,
        "user_agent": user_agent[:MAX_FIELD],
        "source": source,
    }
    return lifecycle_event(Lifecycle.COMPLAINED, send, at, **said, **more)


def named(event: Event, tag: str, identity: bytes) -> Event:
    """`event` under an id of its own, derived from `identity` (what the report is, as its
    sender names or says it) after `tag` (where it came from)."""
    digest = hashlib.blake2b(identity, digest_size=12).hexdigest()
    return msgspec.structs.replace(event, message_id=f"{event.message_id}:{tag}:{digest}")
