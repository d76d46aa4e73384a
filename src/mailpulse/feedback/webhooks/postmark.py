"""Postmark's webhooks, posted to `/webhooks/postmark`.

Postmark does not sign its webhooks; it sends the HTTP Basic auth credentials written into the
webhook's URL (`https://user:password@host/webhooks/postmark`), checked here against
`[webhooks.postmark] username` and `password` (compared in constant time). Nothing dates a
request, so a replay is met by the log's dedup: each record is named by its ID or content.

The body is one record (Postmark, "Webhooks overview"), by `RecordType`:

- `Bounce`: `Type` and `TypeCode` (HardBounce 1, Transient 2, SoftBounce 4096, DnsError 256,
  BadEmailAddress 100000, AutoResponder 64, ...), `Email`, `Details` (the server's reply),
  `Description`, `BouncedAt`, and the bounce itself in `Content` when the webhook includes
  it;
- `SpamComplaint` (the same fields), `Delivery` (`Recipient`, `DeliveredAt`), `Open`
  (`Recipient`, `UserAgent`, `Geo.IP`, `ReceivedAt`), `Click` (also `OriginalLink`),
  `SubscriptionChange` (`SuppressSending`, `SuppressionReason`: HardBounce, SpamComplaint or
  ManualSuppression, the recipient unsubscribing).

Postmark's `MessageID` is its own; the message is found by the `mailpulse-key` metadata
mailpulse sets on each message when `[webhooks.postmark]` is configured (see
mailpulse.delivery.esp), else by the returned message in a bounce's `Content`.

What is read: a bounce goes to the classifier with its reply; only Postmark's HardBounce and
BadEmailAddress may be hard (BadEmailAddress counts as status 5.1.3 when the reply gives
none), every other type is soft; automatic replies and subscribe requests are no bounces. A
SubscriptionChange suppressing for a hard bounce or a complaint was reported as that already;
a reactivation is Postmark's, not the recipient's consent.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from typing import Any

import msgspec

from mailpulse.delivery.esp import POSTMARK_METADATA
from mailpulse.feedback.report import parse_report
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
    iso_time,
    words,
)
from mailpulse.feedback.webhooks.settings import POSTMARK, PostmarkSettings

CHALLENGE = {"WWW-Authenticate": 'Basic realm="mailpulse webhooks", charset="UTF-8"'}
MAX_CONTENT = 256 * 1024  # bytes of a bounce's Content read for the returned message
# Bounce types that may be hard, and the status one stands for when the reply gives none.
_MAY_BE_HARD = {"HardBounce": "", "BadEmailAddress": "5.1.3"}
# Bounce records that are not about a failed delivery.
_NOT_BOUNCES = frozenset(
    (
        "AutoResponder",
        "Subscribe",
        "Unsubscribe",
        "AddressChange",
        "OpenRelayTest",
        "ChallengeVerification",
    )
)


class _Geo(msgspec.Struct):
    IP: str = ""


class _Record(msgspec.Struct):
    RecordType: str = ""
    ID: int | str | None = None
    Type: str = ""
    TypeCode: int | None = None
    MessageID: str = ""
    Email: str = ""
    Recipient: str = ""
    Details: str = ""
    Description: str = ""
    Content: str = ""
    Metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    UserAgent: str = ""
    OriginalLink: str = ""
    ReceivedAt: str = ""
    Geo: _Geo | None = None
    SuppressSending: bool = False
    SuppressionReason: str | None = None


class PostmarkWebhook:
    name = POSTMARK

    def __init__(self, settings: PostmarkSettings) -> None:
        self._expected = (settings.username.encode(), settings.password.encode())

    async def read(self, headers: Mapping[str, str], body: bytes) -> Reading:
        self._authenticate(headers.get("authorization", ""))
        return Reading(events=[postmark_event(decode_json(body))])

    def _authenticate(self, authorization: str) -> None:
        scheme, _, encoded = authorization.strip().partition(" ")
        given = (b"", b"")
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                user, password = b"", b""
            given = (user, password)
        # Both compared whatever the first says: the time taken tells nothing.
        same = [hmac.compare_digest(a, b) for a, b in zip(given, self._expected, strict=True)]
        if not all(same):
            raise Refused(
                401,
                "no or wrong credentials: give the ones of [webhooks.postmark] in the URL",
                "authorization",
                Refusal.UNAUTHORIZED,
                headers=CHALLENGE,
            )


def postmark_event(record: Any) -> EspEvent:
    """One webhook record, as mailpulse reads it."""
    try:
        identity = identity_of(record)
        found = msgspec.convert(record, _Record)
    except (ValueError, TypeError) as exc:  # not as documented, or not text
        return ignored(
            POSTMARK, "", Result.MALFORMED, f"a Postmark record not as documented: {exc}"
        )
    kind = found.RecordType
    if found.ID is not None and kind in ("Bounce", "SpamComplaint"):
        identity = f"{kind}:{found.ID}"
    echoed = {
        "recipient": clip(found.Email or found.Recipient),
        "esp_type": "/".join(str(p) for p in (kind, found.Type, found.TypeCode) if p),
        **_echoed(found),
    }
    if kind == "Bounce":
        if found.Type in _NOT_BOUNCES:
            why = f"a {found.Type} record is not a failed delivery"
            return ignored(POSTMARK, identity, Result.NOT_ACTED, why)
        return EspEvent(
            POSTMARK,
            Kind.BOUNCE,
            identity,
            status=_MAY_BE_HARD.get(found.Type, ""),
            diagnostic=words(found.Details) or words(found.Description),
            transient=found.Type not in _MAY_BE_HARD,
            **echoed,
        )
    if kind == "SpamComplaint":
        return EspEvent(POSTMARK, Kind.COMPLAINT, identity, feedback_type="abuse", **echoed)
    if kind == "Delivery":
        return EspEvent(POSTMARK, Kind.DELIVERED, identity, **echoed)
    if kind in ("Open", "Click"):
        return EspEvent(
            POSTMARK,
            Kind.OPEN if kind == "Open" else Kind.CLICK,
            identity,
            at=iso_time(found.ReceivedAt),
            user_agent=clip(found.UserAgent),
            ip=clip(found.Geo.IP if found.Geo is not None else "", 60),
            url=clip(found.OriginalLink),
            **echoed,
        )
    if kind == "SubscriptionChange":
        if found.SuppressSending and found.SuppressionReason == "ManualSuppression":
            return EspEvent(POSTMARK, Kind.UNSUBSCRIBE, identity, **echoed)
        why = (
            f"Postmark suppressed it for a {found.SuppressionReason}, reported as that already"
            if found.SuppressSending
            else "a reactivation at Postmark is not the recipient's consent"
        )
        return ignored(POSTMARK, identity, Result.NOT_ACTED, why)
    return ignored(POSTMARK, identity, Result.UNKNOWN_EVENT, f"Postmark record {kind[:60]!r}")


def _echoed(found: _Record) -> dict[str, str]:
    """The message's key from the record's metadata; else its key and Message-ID from the
    returned message in a bounce's Content."""
    key = clip(found.Metadata.get(POSTMARK_METADATA), 400)
    if key or not found.Content:
        return {"key": key, "message_id": ""}
    returned = parse_report(found.Content[:MAX_CONTENT].encode("utf-8", errors="replace"))
    return {
        "key": clip(returned.original_key, 400),
        "message_id": clip(returned.original_message_id, 400),
    }
