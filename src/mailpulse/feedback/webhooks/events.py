"""What an ESP's event becomes for its send: the lifecycle event mailpulse's own paths make of
the same news, so that suppression, the complaint breaker, A/B counts and KPIs read it alike.

- a bounce: `Email Bounced`, judged by the classifier from the status and the server's words
  (mailpulse.feedback.classify); the ESP's labels are input (`transient` is never hard) and
  stay on the event as `esp_type`;
- a deferral: `Email Deferred`, likewise;
- a complaint: `Email Complained` with its feedback type;
- an open or a click: `Email Opened` / `Email Clicked`, flagged as a machine's by the ESP's
  own verdict or by mailpulse's rules (mailpulse.feedback.machines) from what it reports;
- an unsubscribe: `Unsubscribed`, from all marketing (from the message's topic for
  SendGrid's group unsubscribes);
- a delivery: nothing (the message was `Email Sent` when the ESP took it), counted.

Every event is named by the ESP's own identity of the report (`EspEvent.identity`), so a
webhook delivered twice makes one event: the log drops the second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailpulse.feedback.classify import Decision, classify_reply
from mailpulse.feedback.machines import MachineRules
from mailpulse.feedback.outcomes import complaint_event, failure_event, named
from mailpulse.feedback.rules import BounceRules
from mailpulse.feedback.tracking import engagement_facts
from mailpulse.feedback.webhooks.model import EspEvent, Kind, Result
from mailpulse.policy.consent import unsubscribed_event
from mailpulse.policy.suppression import canonical_address
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.store import OutboxRow
from mailpulse.types import Event


@dataclass
class Made:
    """What one ESP event made: the events for the log, the result it is counted as, and
    why, for the log line."""

    result: str
    why: str
    events: list[Event] = field(default_factory=list)


def make(
    reported: EspEvent,
    row: OutboxRow,
    now: float,
    machines: MachineRules,
    rules: BounceRules | None = None,
) -> Made:
    """The lifecycle events `reported` makes for the send of outbox row `row`."""
    send = row.intent
    provider, key = reported.provider, send.key
    if reported.recipient and not _same_address(reported.recipient, send.email):
        why = f"{provider} reports {reported.recipient[:200]!r} for {key}, not its recipient"
        return Made(Result.OTHER_RECIPIENT, why)
    more = {"esp_type": reported.esp_type} if reported.esp_type else {}
    kind = reported.kind
    if kind in (Kind.BOUNCE, Kind.DEFERRED):
        judged = classify_reply(
            send.email,
            reported.status,
            reported.diagnostic,
            delayed=kind == Kind.DEFERRED,
            transient=reported.transient,
            remote_mta=reported.remote_mta,
            rules=rules,
        )
        if judged.decision == Decision.NONE:
            return Made(Result.DELIVERED, f"{provider} reports success for {key} ({judged.status})")
        lifecycle = Lifecycle.DEFERRED if kind == Kind.DEFERRED else Lifecycle.BOUNCED
        event = failure_event(lifecycle, send, judged, source=provider, at=now, **more)
        if kind == Kind.DEFERRED:
            result = Result.DEFERRED
        else:
            result = Result.HARD if judged.decision == Decision.HARD else Result.SOFT
        why = f"{provider} {reported.esp_type}: {judged.decision} {kind} of {key} ({judged.reason})"
        return Made(result, why, [_named(event, reported)])
    if kind == Kind.COMPLAINT:
        event = complaint_event(
            send,
            feedback_type=reported.feedback_type,
            user_agent=reported.user_agent,
            source=provider,
            at=now,
            **more,
        )
        why = f"{provider}: {reported.feedback_type} complaint about {key}"
        return Made(Result.COMPLAINT, why, [_named(event, reported)])
    if kind in (Kind.OPEN, Kind.CLICK):
        return _engagement(reported, row, now, machines)
    if kind == Kind.UNSUBSCRIBE:
        topic = (send.topic or "") if reported.topic_only else ""
        event = unsubscribed_event(
            send.contact_id,
            send.email,
            topic,
            source=provider,
            at=now,
            key=key,
            ip=reported.ip,
            user_agent=reported.user_agent,
            message_id=f"{Lifecycle.UNSUBSCRIBED.value}:{key}",
        )
        scope = f"topic {topic}" if topic else "all marketing"
        return Made(
            Result.UNSUBSCRIBE, f"{provider}: unsubscribe from {scope}", [_named(event, reported)]
        )
    return Made(Result.DELIVERED, f"{provider}: {key} delivered")


def _engagement(reported: EspEvent, row: OutboxRow, now: float, machines: MachineRules) -> Made:
    send = row.intent
    opened = reported.kind == Kind.OPEN
    verdict = reported.machine
    if verdict is None and opened:
        verdict = machines.open(method="GET", user_agent=reported.user_agent, ip=reported.ip)
    elif verdict is None:
        verdict = machines.click(
            method="GET",
            user_agent=reported.user_agent,
            ip=reported.ip,
            key=send.key,
            url=reported.url,
            # When the message left: the outbox row's last move, its sending.
            sent_at=row.updated_at or send.created_at,
            at=reported.at,
        )
    more = {"source": reported.provider}
    if not opened:
        more["url"] = reported.url
    facts = engagement_facts(reported.ip, reported.user_agent, verdict, **more)
    kind = Lifecycle.OPENED if opened else Lifecycle.CLICKED
    event = _named(lifecycle_event(kind, send, now, **facts), reported)
    result = Result.OPEN if opened else Result.CLICK
    who = f"a machine ({verdict.rule})" if verdict.machine else "a person"
    return Made(result, f"{reported.provider}: {kind} of {send.key} by {who}", [event])


def _named(event: Event, reported: EspEvent) -> Event:
    return named(event, reported.provider, reported.identity.encode("utf-8"))


def _same_address(reported: str, sent_to: str) -> bool:
    return canonical_address(reported)[0] == canonical_address(sent_to)[0]
