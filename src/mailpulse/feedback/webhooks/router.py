"""`POST /webhooks/{provider}`: public, each provider's requests proven its own in its own way
(an SNS signature, SendGrid's ECDSA signature, Mailgun's HMAC, Postmark's Basic auth). A
provider without its `[webhooks.<provider>]` table answers 404.

A request is refused whole, with a JSON reason and nothing recorded, when it is not the
provider's (401), too old or seen before (401, 406), too large (413, judged before the body
is read past the limit) or not JSON (400). Otherwise each event in it is read on its own: one
about a message mailpulse sent becomes its lifecycle event (mailpulse.feedback.webhooks.events);
one naming no such message, another recipient, or of a kind mailpulse does not read is
ignored, logged with the reason and counted. The events are durable before the answer (200);
if the log cannot take them the answer is 503 and the provider tries again, which is safe:
each event is named by the provider's identity of it, and the log drops a copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from mailpulse.feedback.machines import MachineRules
from mailpulse.feedback.rules import BounceRules
from mailpulse.feedback.tracking import count_engagement
from mailpulse.feedback.webhooks.events import Made, make
from mailpulse.feedback.webhooks.mailgun import MailgunWebhook
from mailpulse.feedback.webhooks.model import EspEvent, Kind, Reading, Refusal, Refused, Result
from mailpulse.feedback.webhooks.postmark import PostmarkWebhook
from mailpulse.feedback.webhooks.sendgrid import SendGridWebhook
from mailpulse.feedback.webhooks.ses import SesWebhook
from mailpulse.feedback.webhooks.settings import PROVIDERS, WebhookSettings
from mailpulse.feedback.webhooks.sns import Fetch, fetch_https
from mailpulse.observe import Metrics
from mailpulse.store import OutboxRow, StateStore
from mailpulse.types import Event

log = logging.getLogger("mailpulse.webhooks")

MAX_BODY = 2 * 1024 * 1024  # bytes of a request: SendGrid's batches are the largest
MAX_MESSAGE_ID = 998  # characters of a Message-ID looked up (a header line's limit)

Append = Callable[[Sequence[Event]], Awaitable[list[Event]]]


class Provider(Protocol):
    name: str

    async def read(self, headers: Mapping[str, str], body: bytes) -> Reading: ...


def providers_for(
    settings: WebhookSettings,
    max_age: float,
    fetch: Fetch = fetch_https,
    clock: Callable[[], float] = time.time,
) -> dict[str, Provider]:
    """The readers of the providers `settings` configures."""
    found: dict[str, Provider] = {}
    if settings.ses is not None:
        found["ses"] = SesWebhook(settings.ses, max_age, fetch, clock)
    if settings.sendgrid is not None:
        found["sendgrid"] = SendGridWebhook(settings.sendgrid, clock)
    if settings.mailgun is not None:
        found["mailgun"] = MailgunWebhook(settings.mailgun, clock)
    if settings.postmark is not None:
        found["postmark"] = PostmarkWebhook(settings.postmark)
    return found


def webhooks_router(
    *,
    providers: Mapping[str, Provider],
    append: Append,
    state: StateStore,
    metrics: Metrics,
    machines: MachineRules,
    rules: BounceRules | None = None,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    async def outcome(reported: EspEvent) -> Made:
        if reported.kind == Kind.IGNORED:
            return Made(reported.result, f"{reported.provider}: {reported.why}")
        row = await _find(state, reported)
        if row is None:
            why = (
                f"{reported.provider} {reported.esp_type or reported.kind} names no message "
                f"sent (key {reported.key[:100]!r}, Message-ID {reported.message_id[:200]!r})"
            )
            return Made(Result.UNKNOWN_SEND, why)
        return make(reported, row, clock(), machines, rules)

    @router.post(
        "/webhooks/{provider}",
        responses={
            200: {"description": "Taken: each event recorded, or ignored with its reason."},
            400: {"description": "Not JSON, or not shaped as the provider documents it."},
            401: {"description": "Not signed by the provider, or signed too long ago."},
            403: {"description": "An SNS topic not configured."},
            404: {"description": "No [webhooks.<provider>] in mailpulse.toml."},
            406: {"description": "A Mailgun signature seen before: a replay."},
            413: {"description": "Larger than a provider's request can be."},
            503: {"description": "Not recorded; the provider should try again."},
        },
    )
    async def receive(provider: str, request: Request) -> JSONResponse:
        """An ESP's report of deliveries, bounces, complaints, opens, clicks and unsubscribes
        of the messages it relayed for mailpulse."""
        label = provider if provider in PROVIDERS else "other"
        reader = providers.get(provider)
        try:
            if reader is None:
                raise Refused(
                    404,
                    f"no webhook {provider[:40]!r} here: configure [webhooks.{provider[:40]}]",
                    "provider",
                    Refusal.NOT_CONFIGURED,
                )
            body = await _capped(request)
            reading = await reader.read(request.headers, body)
            made = [await outcome(reported) for reported in reading.events]
            events = [event for m in made for event in m.events]
            fresh = await append(events) if events else []
        except Refused as refused:
            return _refused(metrics, label, refused, request)
        except Exception:  # ours (the store, the log): the provider tries again later
            metrics.errors.labels("webhooks").inc()
            log.exception("%s webhook: not recorded", label)
            unavailable = Refused(503, "not recorded; try again", "body", Refusal.UNAVAILABLE)
            return _refused(metrics, label, unavailable, request)
        if reading.taken is not None:
            reading.taken()
        recorded = {event.message_id for event in fresh}
        for m in made:
            new = all(event.message_id in recorded for event in m.events)
            result = m.result if new else Result.DUPLICATE
            metrics.webhook_events.labels(label, result).inc()
            log.info("%s%s", m.why, "" if new else " (reported before: dropped)")
        for event in fresh:
            count_engagement(metrics, event)
        metrics.webhook_requests.labels(label, "taken").inc()
        answer: dict[str, Any] = {"events": len(made), "recorded": len(fresh)}
        if reading.note:
            answer["note"] = reading.note
        return JSONResponse(answer)

    return router


async def _find(state: StateStore, reported: EspEvent) -> OutboxRow | None:
    """The outbox row of the message an event is about: by the key the ESP echoed, else by
    its Message-ID."""
    if reported.key:
        row = await state.outbox_get(reported.key)
        if row is not None:
            return row
    written = reported.message_id.strip()
    if not written or len(written) > MAX_MESSAGE_ID:
        return None
    return await state.outbox_by_message_id(f"<{written.strip('<>')}>")


async def _capped(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large(int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int) -> Refused:
    return Refused(
        413, f"{size:,} bytes and more: at most {MAX_BODY:,} are taken", "body", Refusal.TOO_LARGE
    )


def _refused(metrics: Metrics, label: str, refused: Refused, request: Request) -> JSONResponse:
    metrics.webhook_requests.labels(label, refused.refusal).inc()
    peer = request.client.host if request.client else "?"
    log.info("%s webhook from %s refused (%d): %s", label, peer, refused.status, refused.reason)
    return JSONResponse(
        {"error": refused.reason, "where": refused.where},
        status_code=refused.status,
        headers=refused.headers,
    )
