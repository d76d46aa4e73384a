"""Mailgun's webhooks, posted to `/webhooks/mailgun`.

The request (Mailgun, "Securing Webhooks"): a JSON object whose `signature` holds `timestamp`,
`token` and `signature`, the hex HMAC-SHA256 of timestamp and token (no separator) under
`[webhooks.mailgun] signing_key`. A timestamp older than `tolerance` (5 minutes) is a replay
and refused; a token seen within it is refused too (406, which Mailgun does not retry): it is
remembered once the request's events are durable, so a retry after a failure of ours is
taken.

`event-data` ("Webhook Payloads") is one event: `event`, `recipient`, `id`, `timestamp`,
`message.headers.message-id` (the message's own Message-ID, without angle brackets),
`user-variables`, and per kind: `failed` (`severity` permanent or temporary, `reason`,
`delivery-status` with the server's `code`, `message`, `description`, `mx-host`), `delivered`,
`complained`, `opened` (`ip`, `client-info.user-agent`), `clicked` (also `url`),
`unsubscribed`.

What is read: a permanent failure is a bounce, judged by the classifier from the server's
words (a `suppress-*` reason, Mailgun not sending to an address it suppressed, is never hard);
a temporary one is a deferral, Mailgun still trying.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from mailpulse.delivery.esp import ECHO_ARGUMENT
from mailpulse.feedback.webhooks.model import (
    EspEvent,
    Kind,
    Reading,
    Refusal,
    Refused,
    Result,
    clip,
    decode_json,
    identity_of,
    ignored,
    words,
)
from mailpulse.feedback.webhooks.settings import MAILGUN, MailgunSettings

KEPT_TOKENS = 100_000  # tokens remembered at most; older ones than the tolerance go first


class _Signature(msgspec.Struct):
    timestamp: str | int
    token: str
    signature: str


class _Status(msgspec.Struct):
    code: int | str | None = None
    message: str = ""
    description: str = ""
    mx_host: str = msgspec.field(name="mx-host", default="")
    enhanced_code: str = msgspec.field(name="enhanced-code", default="")


class _Headers(msgspec.Struct):
    message_id: str = msgspec.field(name="message-id", default="")


class _Message(msgspec.Struct):
    headers: _Headers = msgspec.field(default_factory=_Headers)


class _Client(msgspec.Struct):
    user_agent: str = msgspec.field(name="user-agent", default="")


class _EventData(msgspec.Struct):
    event: str = ""
    id: str = ""
    timestamp: float | None = None
    recipient: str = ""
    severity: str = ""
    reason: str = ""
    delivery_status: _Status = msgspec.field(name="delivery-status", default_factory=_Status)
    message: _Message = msgspec.field(default_factory=_Message)
    user_variables: dict[str, Any] = msgspec.field(name="user-variables", default_factory=dict)
    ip: str = ""
    url: str = ""
    client_info: _Client = msgspec.field(name="client-info", default_factory=_Client)


_NOT_ACTED = {
    "accepted": "Mailgun took the message",
    "stored": "Mailgun stored a message",
    "rejected": "Mailgun refused to send the message: nothing about the address",
}


class TokenMemory:
    """Signature tokens seen, each until its timestamp is older than the tolerance (the
    timestamp check refuses it from then on)."""

    def __init__(self, tolerance: float, kept: int = KEPT_TOKENS) -> None:
        self._tolerance = tolerance
        self._kept = kept
        self._until: OrderedDict[str, float] = OrderedDict()

    def seen(self, token: str, now: float) -> bool:
        until = self._until.get(token)
        return until is not None and until >= now

    def remember(self, token: str, signed_at: float, now: float) -> None:
        while self._until and next(iter(self._until.values())) < now:
            self._until.popitem(last=False)
        self._until[token] = signed_at + self._tolerance
        self._until.move_to_end(token)
        while len(self._until) > self._kept:
            self._until.popitem(last=False)


class MailgunWebhook:
    name = MAILGUN

    def __init__(self, settings: MailgunSettings, clock: Callable[[], float] = time.time) -> None:
        self._key = settings.signing_key
        self._tolerance = settings.tolerance
        self._clock = clock
        self._tokens = TokenMemory(settings.tolerance)

    async def read(self, headers: Mapping[str, str], body: bytes) -> Reading:
        found = decode_json(body)
        if not isinstance(found, dict):
            raise Refused(400, "the body is not a JSON object", "body", Refusal.MALFORMED)
        try:
            signed = msgspec.convert(found.get("signature"), _Signature)
        except msgspec.ValidationError as exc:
            raise Refused(
                401, f"no signature of Mailgun's: {exc}", "signature", Refusal.UNAUTHORIZED
            ) from None
        signed_at = self._verify(signed)
        token = signed.token

        def taken() -> None:
            self._tokens.remember(token, signed_at, self._clock())

        return Reading(events=[mailgun_event(found.get("event-data"))], taken=taken)

    def _verify(self, signed: _Signature) -> float:
        timestamp = str(signed.timestamp)
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            raise Refused(
                401, "the timestamp is not a number", "signature.timestamp", Refusal.UNAUTHORIZED
            )
        mac = hmac.new(self._key, (timestamp + signed.token).encode("utf-8"), hashlib.sha256)
        if not hmac.compare_digest(mac.hexdigest(), signed.signature.strip().lower()):
            raise Refused(
                401, "the signature does not verify", "signature.signature", Refusal.UNAUTHORIZED
            )
        now = self._clock()
        if abs(now - int(timestamp)) > self._tolerance:
            raise Refused(
                401,
                f"signed at {timestamp}, more than {self._tolerance:.0f} s from now: a replay",
                "signature.timestamp",
                Refusal.STALE,
            )
        if self._tokens.seen(signed.token, now):
            raise Refused(
                406,
                "this signature's token was taken already: a replay",
                "signature.token",
                Refusal.REPLAYED,
            )
        return float(timestamp)


def mailgun_event(data: Any) -> EspEvent:
    """The `event-data` of a request, as mailpulse reads it."""
    try:
        identity = identity_of(data)
        found = msgspec.convert(data, _EventData)
    except (ValueError, TypeError) as exc:  # not as documented, or not text
        return ignored(MAILGUN, "", Result.MALFORMED, f"event-data not as documented: {exc}")
    if found.id:
        identity = f"{found.id[:200]}:{found.timestamp}"
    kind = found.event
    if kind in _NOT_ACTED:
        return ignored(MAILGUN, identity, Result.NOT_ACTED, _NOT_ACTED[kind])
    message_id = clip(found.message.headers.message_id, 400)
    echoed = {
        "recipient": clip(found.recipient),
        "key": clip(found.user_variables.get(ECHO_ARGUMENT), 400),
        "message_id": f"<{message_id.strip('<>')}>" if message_id else "",
        "esp_type": "/".join(p for p in (kind, found.severity, found.reason) if p),
    }
    if kind == "failed":
        status = found.delivery_status
        return EspEvent(
            MAILGUN,
            Kind.DEFERRED if found.severity == "temporary" else Kind.BOUNCE,
            identity,
            status=clip(status.enhanced_code, 20),
            diagnostic=_diagnostic(status),
            transient=found.severity != "permanent" or found.reason.startswith("suppress"),
            remote_mta=clip(status.mx_host, 200),
            **echoed,
        )
    if kind == "delivered":
        return EspEvent(MAILGUN, Kind.DELIVERED, identity, **echoed)
    if kind == "complained":
        return EspEvent(MAILGUN, Kind.COMPLAINT, identity, feedback_type="abuse", **echoed)
    if kind in ("opened", "clicked"):
        return EspEvent(
            MAILGUN,
            Kind.OPEN if kind == "opened" else Kind.CLICK,
            identity,
            at=found.timestamp,
            user_agent=clip(found.client_info.user_agent),
            ip=clip(found.ip, 60),
            url=clip(found.url),
            **echoed,
        )
    if kind == "unsubscribed":
        return EspEvent(MAILGUN, Kind.UNSUBSCRIBE, identity, **echoed)
    return ignored(MAILGUN, identity, Result.UNKNOWN_EVENT, f"Mailgun event {kind[:60]!r}")


def _diagnostic(status: _Status) -> str:
    """The server's reply: its code before its words, as the classifier reads a reply."""
    said = words(status.message) or words(status.description)
    code = status.code
    if isinstance(code, int) and 200 <= code < 600 and not said.startswith(str(code)):
        return f"{code} {said}".strip()
    return said
