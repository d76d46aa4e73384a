"""Amazon SES events, published to an SNS topic that posts to `/webhooks/ses`.

SES writes one event per SNS notification (AWS, "Contents of event data that Amazon SES
publishes to Amazon SNS"): `eventType` (with event publishing through a configuration set)
or `notificationType` (the identity's feedback notifications), the `mail` it is about (with
the message's own headers, so its Message-ID and X-Mailpulse-Key), and one of:

- `bounce`: `bounceType` Permanent, Transient or Undetermined and a subtype; per recipient in
  `bouncedRecipients` the DSN's `status` and `diagnosticCode` when SES had one;
- `complaint`: `complainedRecipients`, `complaintFeedbackType` (RFC 5965) when the provider
  sent a feedback report, `complaintSubType` OnAccountSuppressionList when SES did not even
  send the message (no new complaint: ignored);
- `delivery`, `open` (`ipAddress`, `userAgent`), `click` (also `link`), `deliveryDelay`.

What is read: SES's Permanent is no evidence of a bad address by itself (its bounce goes to the
classifier with the status and words), except the NoEmail subtype ("the target email address
does not exist"), which counts as status 5.1.1 when the DSN gives none; Transient, and an
undetermined type, are never hard.

Each SNS message is checked first (mailpulse.feedback.webhooks.sns): its topic one of
`[webhooks.ses] topics`, its signature SNS's, its Timestamp within the log's dedup window (a
message replayed later is refused; within it, the log drops the copy). A subscription
confirmation for a configured topic is confirmed by fetching its SubscribeURL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

import msgspec

from mailpulse.feedback.webhooks.model import (
    EspEvent,
    Kind,
    Reading,
    Refusal,
    Refused,
    Result,
    clip,
    decode_json,
    ignored,
    iso_time,
    words,
)
from mailpulse.feedback.webhooks.settings import SES, SesSettings
from mailpulse.feedback.webhooks.sns import (
    NOTIFICATION,
    SUBSCRIPTION_CONFIRMATION,
    UNSUBSCRIBE_CONFIRMATION,
    Certificates,
    Fetch,
    FetchError,
    SnsMessage,
    fetch_https,
    sns_url_problem,
    verify,
)

log = logging.getLogger("mailpulse.webhooks")

FUTURE_SKEW = 300.0  # seconds an SNS Timestamp may be ahead of our clock
# SES subtypes that say the address does not exist, and the status they stand for.
_NO_SUCH_ADDRESS = {"NoEmail": "5.1.1"}
# SES did not send the message: its own list holds the address. Not a new bounce of the
# address's, but a failure all the same (soft: mailpulse suppresses after soft_bounce_limit).
_SUPPRESSED_BY_SES = frozenset(("Suppressed", "OnAccountSuppressionList"))


class _Header(msgspec.Struct):
    name: str = ""
    value: str = ""


class _CommonHeaders(msgspec.Struct):
    messageId: str = ""


class _Mail(msgspec.Struct):
    messageId: str = ""
    destination: list[str] = msgspec.field(default_factory=list)
    headers: list[_Header] = msgspec.field(default_factory=list)
    commonHeaders: _CommonHeaders = msgspec.field(default_factory=_CommonHeaders)


class _Recipient(msgspec.Struct):
    emailAddress: str = ""
    action: str = ""
    status: str = ""
    diagnosticCode: str = ""


class _Bounce(msgspec.Struct):
    bounceType: str = ""
    bounceSubType: str = ""
    bouncedRecipients: list[_Recipient] = msgspec.field(default_factory=list)
    feedbackId: str = ""


class _Complaint(msgspec.Struct):
    complainedRecipients: list[_Recipient] = msgspec.field(default_factory=list)
    feedbackId: str = ""
    complaintFeedbackType: str = ""
    complaintSubType: str | None = None
    userAgent: str = ""


class _Delivery(msgspec.Struct):
    recipients: list[str] = msgspec.field(default_factory=list)
    smtpResponse: str = ""


class _Engagement(msgspec.Struct):
    ipAddress: str = ""
    userAgent: str = ""
    timestamp: str = ""
    link: str = ""


class _Delay(msgspec.Struct):
    delayType: str = ""
    delayedRecipients: list[_Recipient] = msgspec.field(default_factory=list)


class _SesEvent(msgspec.Struct):
    mail: _Mail
    eventType: str = ""
    notificationType: str = ""
    bounce: _Bounce | None = None
    complaint: _Complaint | None = None
    delivery: _Delivery | None = None
    open: _Engagement | None = None
    click: _Engagement | None = None
    deliveryDelay: _Delay | None = None


class SesWebhook:
    name = SES

    def __init__(
        self,
        settings: SesSettings,
        max_age: float,
        fetch: Fetch = fetch_https,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`max_age`: how old an SNS message may be, the log's dedup window; `fetch`: how
        certificates and confirmation URLs are fetched."""
        self._settings = settings
        self._fetch = fetch
        self._certificates = Certificates(fetch, clock)
        self._max_age = max_age
        self._clock = clock

    async def read(self, headers: Mapping[str, str], body: bytes) -> Reading:
        try:
            message = msgspec.convert(decode_json(body), SnsMessage)
        except msgspec.ValidationError as exc:
            raise Refused(400, f"not an SNS message: {exc}", "body", Refusal.MALFORMED) from None
        if message.TopicArn not in self._settings.topics:
            raise Refused(
                403,
                f"topic {message.TopicArn[:300]!r} is not one of [webhooks.ses] topics",
                "TopicArn",
                Refusal.FORBIDDEN_TOPIC,
            )
        await verify(message, self._certificates)
        self._check_age(message.Timestamp)
        if message.Type == SUBSCRIPTION_CONFIRMATION:
            return Reading(note=await self._confirm(message))
        if message.Type == UNSUBSCRIBE_CONFIRMATION:
            return Reading(note=f"{message.TopicArn} no longer posts here")
        assert message.Type == NOTIFICATION  # string_to_sign refused any other
        return Reading(events=ses_events(message.Message, message.MessageId))

    def _check_age(self, timestamp: str) -> None:
        at = iso_time(timestamp)
        if at is None:
            raise Refused(400, "Timestamp is not an ISO 8601 time", "Timestamp", Refusal.MALFORMED)
        now = self._clock()
        if at < now - self._max_age or at > now + FUTURE_SKEW:
            raise Refused(
                401,
                f"the message was signed at {timestamp}: too long ago to be taken, a replay",
                "Timestamp",
                Refusal.STALE,
            )

    async def _confirm(self, message: SnsMessage) -> str:
        problem = sns_url_problem(message.SubscribeURL, certificate=False)
        if problem is not None:
            raise Refused(
                400,
                f"SubscribeURL refused: {problem}",
                "SubscribeURL",
                Refusal.FORGED_CERTIFICATE,
            )
        try:
            await self._fetch(message.SubscribeURL)
        except FetchError as exc:
            log.warning("could not confirm the subscription to %s: %s", message.TopicArn, exc)
            raise Refused(
                503,
                "the subscription could not be confirmed; try again",
                "SubscribeURL",
                Refusal.UNAVAILABLE,
            ) from None
        log.info("confirmed the SNS subscription to %s", message.TopicArn)
        return f"subscription to {message.TopicArn} confirmed"


def ses_events(text: str, sns_id: str) -> list[EspEvent]:
    """The events of one SES notification (the SNS message's `Message`)."""
    try:
        found = msgspec.json.decode(text, type=_SesEvent)
    except (ValueError, RecursionError) as exc:  # not JSON, not as documented
        return [ignored(SES, sns_id, Result.MALFORMED, f"not an SES event: {exc}")]
    kind = found.eventType or found.notificationType
    echoed = _echoed(found.mail)
    reported = _READERS.get(kind)
    if reported is None:
        return [ignored(SES, sns_id, Result.UNKNOWN_EVENT, f"SES event {kind[:60]!r} not read")]
    return reported(found, sns_id, echoed)


def _echoed(mail: _Mail) -> dict[str, str]:
    """The message's key and Message-ID, from its headers as SES kept them."""
    named = {h.name.lower(): h.value for h in mail.headers}
    return {
        "key": clip(named.get("x-mailpulse-key"), 400),
        "message_id": clip(named.get("message-id") or mail.commonHeaders.messageId, 400),
    }


def _bounces(found: _SesEvent, sns_id: str, echoed: dict[str, str]) -> list[EspEvent]:
    bounce = found.bounce
    if bounce is None:
        return [ignored(SES, sns_id, Result.MALFORMED, "a Bounce without its bounce object")]
    label = f"{bounce.bounceType}/{bounce.bounceSubType}"
    transient = bounce.bounceType != "Permanent" or bounce.bounceSubType in _SUPPRESSED_BY_SES
    return [
        EspEvent(
            SES,
            Kind.BOUNCE,
            f"{bounce.feedbackId or sns_id}:{n}",
            recipient=clip(r.emailAddress),
            esp_type=label,
            status=clip(r.status, 20) or _NO_SUCH_ADDRESS.get(bounce.bounceSubType, ""),
            diagnostic=words(r.diagnosticCode),
            transient=transient,
            **echoed,
        )
        for n, r in enumerate(bounce.bouncedRecipients)
    ]


def _complaints(found: _SesEvent, sns_id: str, echoed: dict[str, str]) -> list[EspEvent]:
    complaint = found.complaint
    if complaint is None:
        return [ignored(SES, sns_id, Result.MALFORMED, "a Complaint without its complaint object")]
    if complaint.complaintSubType == "OnAccountSuppressionList":
        why = "SES did not send it: the address is on the account's suppression list"
        return [ignored(SES, sns_id, Result.NOT_ACTED, why)]
    return [
        EspEvent(
            SES,
            Kind.COMPLAINT,
            f"{complaint.feedbackId or sns_id}:{n}",
            recipient=clip(r.emailAddress),
            esp_type="Complaint",
            feedback_type=clip(complaint.complaintFeedbackType, 40) or "abuse",
            user_agent=clip(complaint.userAgent),
            **echoed,
        )
        for n, r in enumerate(complaint.complainedRecipients)
    ]


def _deliveries(found: _SesEvent, sns_id: str, echoed: dict[str, str]) -> list[EspEvent]:
    recipients = found.delivery.recipients if found.delivery is not None else []
    said = words(found.delivery.smtpResponse) if found.delivery is not None else ""
    return [
        EspEvent(SES, Kind.DELIVERED, f"{sns_id}:{n}", recipient=clip(r), diagnostic=said, **echoed)
        for n, r in enumerate(recipients)
    ]


def _delays(found: _SesEvent, sns_id: str, echoed: dict[str, str]) -> list[EspEvent]:
    delay = found.deliveryDelay
    if delay is None:
        return [ignored(SES, sns_id, Result.MALFORMED, "a DeliveryDelay without its object")]
    return [
        EspEvent(
            SES,
            Kind.DEFERRED,
            f"{sns_id}:{n}",
            recipient=clip(r.emailAddress),
            esp_type=f"DeliveryDelay/{delay.delayType}",
            status=clip(r.status, 20),
            diagnostic=words(r.diagnosticCode),
            transient=True,
            **echoed,
        )
        for n, r in enumerate(delay.delayedRecipients)
    ]


def _engagement(found: _SesEvent, sns_id: str, echoed: dict[str, str]) -> list[EspEvent]:
    kind, seen = (Kind.OPEN, found.open) if found.open is not None else (Kind.CLICK, found.click)
    if seen is None:
        return [ignored(SES, sns_id, Result.MALFORMED, "an Open or Click without its object")]
    # An open or a click names no recipient; a message of mailpulse's has only one.
    destination = found.mail.destination
    recipient = clip(destination[0]) if len(destination) == 1 else ""
    return [
        EspEvent(
            SES,
            kind,
            sns_id,
            recipient=recipient,
            esp_type=found.eventType,
            at=iso_time(seen.timestamp),
            user_agent=clip(seen.userAgent),
            ip=clip(seen.ipAddress, 60),
            url=clip(seen.link),
            **echoed,
        )
    ]


_READERS = {
    "Bounce": _bounces,
    "Complaint": _complaints,
    "Delivery": _deliveries,
    "DeliveryDelay": _delays,
    "Open": _engagement,
    "Click": _engagement,
}
