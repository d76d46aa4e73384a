"""Twilio SendGrid's Signed Event Webhook, posted to `/webhooks/sendgrid`.

The request (Twilio SendGrid, "Getting Started with the Event Webhook Security Features"):
`X-Twilio-Email-Event-Webhook-Signature` is the base64 of an ECDSA P-256 signature (ASN.1 DER)
over SHA-256 of the `X-Twilio-Email-Event-Webhook-Timestamp` header followed by the raw body,
checked with `[webhooks.sendgrid] public_key`. A timestamp older than `tolerance` (5 minutes)
is a replay and refused; within it, each event's `sg_event_id` names it, so the log drops the
copy.

The body is a JSON array of events ("Event Webhook Reference"), each with `event`, `email`,
`timestamp`, `smtp-id` (the Message-ID of the message as it was handed over), `sg_event_id`,
and per kind: `bounce` (`type` bounce or blocked, `status`, `reason`), `dropped` (`reason`,
`status`: SendGrid did not send it), `deferred` (`response`), `delivered`, `open` (`useragent`,
`ip`, `sg_machine_open` when SendGrid judged Apple's proxy opened it), `click` (also `url`),
`spamreport`, `unsubscribe`, `group_unsubscribe`, `group_resubscribe`, `processed`.

What is read: a bounce goes to the classifier with its status and reason, whatever SendGrid
calls it; a `blocked` one ("could not or would not accept the message temporarily") and a drop
are never hard. The message's key is the `mailpulse_key` custom argument mailpulse sets on each
message when `[webhooks.sendgrid]` is configured (X-SMTPAPI, see mailpulse.delivery.esp);
opens and clicks carry no `smtp-id`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from mailpulse.delivery.esp import ECHO_ARGUMENT
from mailpulse.feedback.machines import ESP_FLAG, Verdict
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
from mailpulse.feedback.webhooks.settings import SENDGRID, SendGridSettings

SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
APPLE_PROXY = Verdict(True, ESP_FLAG, "SendGrid: opened by Apple Mail Privacy Protection")


class _Event(msgspec.Struct):
    event: str = ""
    email: str = ""
    smtp_id: str = msgspec.field(name="smtp-id", default="")
    sg_event_id: str = ""
    type: str = ""
    status: str = ""
    reason: str = ""
    response: str = ""
    useragent: str = ""
    ip: str = ""
    url: str = ""
    sg_machine_open: bool = False
    timestamp: float | None = None


# SendGrid events read as what mailpulse knows them as; the rest are not acted on.
_NOT_ACTED = {
    "processed": "SendGrid took the message",
    "group_resubscribe": "mailpulse keeps its own consent: a resubscribe at SendGrid is not one",
}


class SendGridWebhook:
    name = SENDGRID

    def __init__(self, settings: SendGridSettings, clock: Callable[[], float] = time.time) -> None:
        self._key = settings.public_key
        self._tolerance = settings.tolerance
        self._clock = clock

    async def read(self, headers: Mapping[str, str], body: bytes) -> Reading:
        self._verify(headers, body)
        items = decode_json(body)
        if not isinstance(items, list):
            raise Refused(400, "the body is not a JSON array of events", "body", Refusal.MALFORMED)
        return Reading(events=[sendgrid_event(item) for item in items])

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        signature, timestamp = headers.get(SIGNATURE), headers.get(TIMESTAMP)
        if not signature or not timestamp:
            raise Refused(
                401,
                "no signature: turn on the Signed Event Webhook at SendGrid",
                SIGNATURE,
                Refusal.UNAUTHORIZED,
            )
        if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
            raise Refused(401, "the timestamp is not a number", TIMESTAMP, Refusal.UNAUTHORIZED)
        try:
            der = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise Refused(
                401, "the signature is not base64", SIGNATURE, Refusal.UNAUTHORIZED
            ) from None
        try:
            self._key.verify(der, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise Refused(
                401, "the signature does not verify", SIGNATURE, Refusal.UNAUTHORIZED
            ) from None
        if abs(self._clock() - int(timestamp)) > self._tolerance:
            raise Refused(
                401,
                f"signed at {timestamp}, more than {self._tolerance:.0f} s from now: a replay",
                TIMESTAMP,
                Refusal.STALE,
            )


def sendgrid_event(item: Any) -> EspEvent:
    """One event of the array, as mailpulse reads it."""
    try:
        identity = identity_of(item)
        found = msgspec.convert(item, _Event)
    except (ValueError, TypeError) as exc:  # not as documented, or not text
        return ignored(SENDGRID, "", Result.MALFORMED, f"a SendGrid event not as documented: {exc}")
    identity = found.sg_event_id[:200] or identity
    kind = found.event
    if kind in _NOT_ACTED:
        return ignored(SENDGRID, identity, Result.NOT_ACTED, _NOT_ACTED[kind])
    echoed = {
        "recipient": clip(found.email),
        "key": clip(item.get(ECHO_ARGUMENT), 400),
        "message_id": clip(found.smtp_id, 400),
        "esp_type": f"{kind}/{found.type}" if found.type else kind,
    }
    if kind in ("bounce", "dropped"):
        return EspEvent(
            SENDGRID,
            Kind.BOUNCE,
            identity,
            status=clip(found.status, 20),
            diagnostic=words(found.reason),
            transient=kind == "dropped" or found.type == "blocked",
            **echoed,
        )
    if kind == "deferred":
        return EspEvent(
            SENDGRID,
            Kind.DEFERRED,
            identity,
            diagnostic=words(found.response),
            transient=True,
            **echoed,
        )
    if kind == "delivered":
        return EspEvent(SENDGRID, Kind.DELIVERED, identity, **echoed)
    if kind in ("open", "click"):
        return EspEvent(
            SENDGRID,
            Kind.OPEN if kind == "open" else Kind.CLICK,
            identity,
            at=found.timestamp,
            user_agent=clip(found.useragent),
            ip=clip(found.ip, 60),
            url=clip(found.url),
            machine=APPLE_PROXY if found.sg_machine_open else None,
            **echoed,
        )
    if kind == "spamreport":
        return EspEvent(SENDGRID, Kind.COMPLAINT, identity, feedback_type="abuse", **echoed)
    if kind in ("unsubscribe", "group_unsubscribe"):
        return EspEvent(
            SENDGRID,
            Kind.UNSUBSCRIBE,
            identity,
            user_agent=clip(found.useragent),
            ip=clip(found.ip, 60),
            topic_only=kind == "group_unsubscribe",
            **echoed,
        )
    return ignored(SENDGRID, identity, Result.UNKNOWN_EVENT, f"SendGrid event {kind[:60]!r}")
