"""What every provider's reader turns a webhook into: `EspEvent`s, one per thing reported
about one recipient, in a shape of mailpulse's own; or `Refused` with the answer to give."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from mailpulse.feedback.machines import Verdict
from mailpulse.feedback.report import MAX_FIELD


class Kind:
    BOUNCE = "bounce"  # the ESP gave up on the message
    DEFERRED = "deferred"  # it is still trying
    DELIVERED = "delivered"
    COMPLAINT = "complaint"
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"
    IGNORED = "ignored"  # nothing mailpulse acts on: `result` and `why` say what it was


class Result:
    """What became of one reported event (the label of mailpulse_webhook_events_total)."""

    HARD = "hard_bounce"
    SOFT = "soft_bounce"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    COMPLAINT = "complaint"
    OPEN = "open"
    CLICK = "click"
    UNSUBSCRIBE = "unsubscribe"
    DUPLICATE = "duplicate"  # reported before: the log dropped it
    UNKNOWN_SEND = "unknown_send"  # names no message mailpulse sent
    OTHER_RECIPIENT = "other_recipient"  # names a recipient other than the message's
    UNKNOWN_EVENT = "unknown_event"  # a type of event mailpulse does not read
    MALFORMED = "malformed"  # not shaped as the provider documents it
    NOT_ACTED = "not_acted"  # read, and nothing to do (a drop's resubscribe, a "processed")


class Refusal:
    """Why a whole request was refused (the label of mailpulse_webhook_requests_total)."""

    UNAUTHORIZED = "unauthorized"  # no or a bad signature or credential
    STALE = "stale"  # signed too long ago: a replay
    REPLAYED = "replayed"  # a signature seen before
    FORGED_CERTIFICATE = "forged_certificate"  # an SNS certificate not at an SNS address
    FORBIDDEN_TOPIC = "forbidden_topic"  # an SNS topic not configured
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    NOT_CONFIGURED = "not_configured"
    UNAVAILABLE = "unavailable"  # ours: the log or a certificate could not be had


class Refused(Exception):
    """A request not taken: the status, the reason and the field it is about, answered as
    JSON; `refusal` labels it for the metric."""

    def __init__(
        self,
        status: int,
        reason: str,
        where: str,
        refusal: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.reason, self.where = status, reason, where
        self.refusal = refusal
        self.headers = headers or {}


@dataclass(frozen=True)
class EspEvent:
    """One thing an ESP reported about one recipient of one message."""

    provider: str
    kind: str
    identity: str  # what names this report, the same on every retry of its webhook
    recipient: str = ""  # as the ESP names it
    key: str = ""  # the message's X-Mailpulse-Key, as echoed
    message_id: str = ""  # its Message-ID, as echoed
    esp_type: str = ""  # the ESP's own name for what happened, kept on the event
    at: float | None = None  # when it happened, by the ESP's clock
    # Bounces and deferrals: the status and the server's words, and whether the ESP calls it
    # temporary (never a hard bounce then).
    status: str = ""
    diagnostic: str = ""
    transient: bool = False
    remote_mta: str = ""
    feedback_type: str = ""  # a complaint's
    user_agent: str = ""  # a complaint's reporter, or who opened or clicked
    ip: str = ""
    url: str = ""  # a click's
    machine: Verdict | None = None  # the ESP's own verdict that a machine opened
    topic_only: bool = False  # an unsubscribe from the message's topic, not all marketing
    result: str = ""  # an IGNORED one's label
    why: str = ""  # an IGNORED one's reason, for the log


@dataclass
class Reading:
    """What a provider read from one request: its events, a note of anything else it did
    (a subscription confirmed), and what to do once the events are durable."""

    events: list[EspEvent] = field(default_factory=list)
    note: str = ""
    taken: Callable[[], None] | None = None


def decode_json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except ValueError as exc:  # msgspec's DecodeError, or text that is not UTF-8
        raise Refused(400, f"the body is not JSON: {exc}", "body", Refusal.MALFORMED) from None
    except RecursionError:
        raise Refused(400, "the body nests too deep", "body", Refusal.MALFORMED) from None


def identity_of(item: Any) -> str:
    """What names a reported item that carries no id of its own: a digest of its content,
    which is the same on every retry."""
    encoded = msgspec.json.encode(item, order="sorted")
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def ignored(provider: str, identity: str, result: str, why: str, **more: Any) -> EspEvent:
    return EspEvent(provider, Kind.IGNORED, identity, result=result, why=why, **more)


_DIAGNOSTIC_TYPE = re.compile(r"^\s*(?:smtp|x-[\w-]+)\s*;\s*", re.IGNORECASE)


def words(text: Any) -> str:
    """A server's reply as an ESP passes it on, without the diagnostic type (`smtp; 550 ...`,
    RFC 3464 §2.3.6), clipped."""
    if not isinstance(text, str):
        return ""
    return _DIAGNOSTIC_TYPE.sub("", text.strip(), count=1)[:MAX_FIELD]


def clip(text: Any, longest: int = MAX_FIELD) -> str:
    return text.strip()[:longest] if isinstance(text, str) else ""


def iso_time(text: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (an ESP's), or None."""
    if not isinstance(text, str):
        return None
    written = re.sub(r"(\.\d{6})\d+", r"\1", text.strip())  # .NET writes 7 digits of fraction
    try:
        return datetime.fromisoformat(written).timestamp()
    except ValueError:
        return None
