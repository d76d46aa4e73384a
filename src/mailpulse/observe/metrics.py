"""Prometheus metrics: names and labels follow Prometheus conventions
(prometheus.io/docs/practices/naming): a `mailpulse_` prefix, base units in the name (seconds,
bytes; `_ratio` for a share), `_total` on counters, and labels that take a few values each (a
stage, a status, a reason, a rule of the project), never an id of a contact, a message or a
campaign: each label value is a time series kept for as long as the process lives. Figures per
campaign, journey or template are in GET /admin/stats (mailpulse.observe.kpis) instead.
docs/grafana-dashboard.json charts them; tests/observe/test_grafana_dashboard.py holds every
name it queries to what /metrics serves.

One registry per pipeline, so tests and several pipelines in one process do not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from mailpulse.observe.processes import CourierProcessCollector

# Event-to-SMTP latency lives between 1 ms and a few seconds, plus retries much later.
_LATENCY_BUCKETS = (
    0.001,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    30.0,
    300.0,
    3600.0,
)
# A stage takes from 0.1 ms (an ingest) to seconds (an SMTP transaction to a slow server, a
# fold batch of thousands of events).
_STAGE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # mailpulse_process_cpu_seconds_total, mailpulse_process_resident_memory_bytes and the
        # rest of the standard process metrics, of this process.
        ProcessCollector(namespace="mailpulse", registry=r)
        self.events = Counter(
            "mailpulse_events_total",
            "Events accepted into the log, by call type.",
            ["type"],
            registry=r,
        )
        self.events_duplicate = Counter(
            "mailpulse_events_duplicate_total",
            "Events dropped because their messageId was seen within the dedup window.",
            registry=r,
        )
        self.events_rejected = Counter(
            "mailpulse_events_rejected_total",
            "Ingestion requests refused, by reason.",
            ["reason"],
            registry=r,
        )
        self.emails = Counter(
            "mailpulse_emails_total",
            "Email lifecycle transitions: queued, held, sent, deferred, bounced, suppressed, "
            "expired, failed; opened, clicked (by people), machine_opened, machine_clicked.",
            ["status"],
            registry=r,
        )
        self.fan_out = Counter(
            "mailpulse_fan_out_total",
            "Events about an object (Back In Stock, Price Dropped) sent on to interested contacts.",
            registry=r,
        )
        self.suppressions_added = Counter(
            "mailpulse_suppressions_added_total",
            "Entries added to the suppression list (or made stronger), by reason: hard_bounce, "
            "soft_bounce, complaint, unsubscribe, manual, erased.",
            ["reason"],
            registry=r,
        )
        self.sends_blocked = Counter(
            "mailpulse_sends_blocked_total",
            "Messages not sent because a suppression entry blocks them, by the entry's reason.",
            ["reason"],
            registry=r,
        )
        self.complaint_window = Gauge(
            "mailpulse_breaker_window",
            "What the protective breaker last judged: marketing messages sent and complaints "
            "about marketing in its window (since the last resume, if later).",
            ["figure"],
            registry=r,
        )
        self.complaint_rate = Gauge(
            "mailpulse_complaint_rate_ratio",
            "The complaint rate of marketing the protective breaker last judged (complaints "
            "over sends in its window); NaN without sends.",
            registry=r,
        )
        self.complaint_alert = Gauge(
            "mailpulse_complaint_alert",
            "1 while the complaint-rate alert is raised ([breaker] alert reached), else 0.",
            registry=r,
        )
        self.breaker_tripped = Gauge(
            "mailpulse_breaker_tripped",
            "1 while the protective breaker holds marketing ([breaker] pause reached, not yet "
            "resumed), else 0.",
            registry=r,
        )
        self.breaker_moves = Counter(
            "mailpulse_breaker_moves_total",
            "Moves of the protective breaker this process made: alert raised or resolved, "
            "tripped, resumed (each made once, by one process).",
            ["move"],
            registry=r,
        )
        self.inbound_messages = Counter(
            "mailpulse_inbound_messages_total",
            "What the inbound SMTP listener made of the mail it was offered, by result: "
            "hard_bounce, soft_bounce, delayed, delivered, complaint, auto_reply, unsubscribe, "
            "not_a_report, other_recipient (a report about someone else: ignored), "
            "unknown_send, bad_token, refused_recipient (per RCPT), error.",
            ["result"],
            registry=r,
        )
        self.webhook_requests = Counter(
            "mailpulse_webhook_requests_total",
            "Requests to POST /webhooks/{provider}, by provider (ses, sendgrid, mailgun, "
            "postmark, other) and result: taken, or refused as unauthorized, stale, replayed, "
            "forged_certificate, forbidden_topic, malformed, too_large, not_configured, "
            "unavailable.",
            ["provider", "result"],
            registry=r,
        )
        self.webhook_events = Counter(
            "mailpulse_webhook_events_total",
            "Events the ESPs reported by webhook, by provider and what became of each: "
            "hard_bounce, soft_bounce, deferred, delivered, complaint, open, click, "
            "unsubscribe, duplicate (reported before), or ignored as unknown_send, "
            "other_recipient, unknown_event, malformed, not_acted.",
            ["provider", "result"],
            registry=r,
        )
        self.contacts_erased = Counter(
            "mailpulse_contacts_erased_total",
            "Contacts erased (their erase event folded): a tombstone and a hashed suppression "
            "entry are all that is left of each.",
            registry=r,
        )
        self.events_forgotten = Counter(
            "mailpulse_events_forgotten_total",
            "Events deleted from the log after [privacy] event_retention.",
            registry=r,
        )
        self.public_limited = Counter(
            "mailpulse_public_rate_limited_total",
            "Requests to the public pages and links answered 429, by path prefix (/u/, /p/, "
            "/o/, /c/).",
            ["prefix"],
            registry=r,
        )
        self.errors = Counter(
            "mailpulse_errors_total",
            "Unexpected errors, by pipeline stage.",
            ["stage"],
            registry=r,
        )
        self.event_to_smtp = Histogram(
            "mailpulse_event_to_smtp_seconds",
            "From the event's arrival to the SMTP server's 250 for the message it triggered "
            "(a campaign's messages are not counted).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stage = Histogram(
            "mailpulse_stage_seconds",
            "Time spent per pipeline stage: ingest (durable append), fold, render, sign, smtp.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "mailpulse_queue_depth", "Items waiting between stages.", ["queue"], registry=r
        )
        self.outbox_backlog = Gauge(
            "mailpulse_outbox_backlog_seconds",
            "How long the oldest message due to be sent (queued, or deferred and due again) "
            "has waited past its time; 0 when none waits.",
            registry=r,
        )
        self.smtp_in_flight = Gauge(
            "mailpulse_smtp_in_flight", "SMTP transactions under way.", registry=r
        )
        self.shaping_backoff = Gauge(
            "mailpulse_shaping_backoff_ratio",
            "The share of its rule's rate a destination was last cut to after it asked to slow "
            "down (421, 4.7.x); it recovers by itself.",
            ["rule"],
            registry=r,
        )
        self.shaping_connections = Gauge(
            "mailpulse_shaping_connections",
            "SMTP transactions under way to a destination whose rule limits its connections, "
            "by rule (in this process).",
            ["rule"],
            registry=r,
        )
        self.quota_used = Gauge(
            "mailpulse_quota_used",
            "Sends counted in the current window of a send quota ([delivery.limits] hourly, "
            "daily), as this process last saw it.",
            ["quota"],
            registry=r,
        )
        self.quota_limit = Gauge(
            "mailpulse_quota_limit", "Sends a quota allows per window.", ["quota"], registry=r
        )
        self.shaping_wait = Histogram(
            "mailpulse_shaping_wait_seconds",
            "Time a send waited for its destination's turn and connection, by shaping rule "
            "(its domain, mx:suffix, provider, or *).",
            ["rule"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.alert_firing = Gauge(
            "mailpulse_alert_firing",
            "1 while an alert rule (alerts.yaml and the built-in ones) fires, else 0, by rule.",
            ["alert"],
            registry=r,
        )
        self.alert_notifications = Counter(
            "mailpulse_alert_notifications_total",
            "Alert notices (firing or resolved) by notifier (log, or a name in alerts.yaml) "
            "and result: delivered, refused (a 4xx or 5xx, for good), failed (after its "
            "retries), dropped (the notifier too far behind).",
            ["notifier", "result"],
            registry=r,
        )
        self._email_children: dict[str, Counter] = {}
        self.stage_ingest = self.stage.labels("ingest")
        self.stage_fold = self.stage.labels("fold")
        self.stage_render = self.stage.labels("render")
        self.stage_sign = self.stage.labels("sign")
        self.stage_smtp = self.stage.labels("smtp")

    def watch_couriers(self, pids: Callable[[], Sequence[int | None]]) -> None:
        """Report the courier processes' CPU and memory too (see observe.processes)."""
        self.registry.register(CourierProcessCollector(pids))

    def count_email(self, status: str, messages: int = 1) -> None:
        """Messages' transition (what became of them)."""
        # The labelled child found once per status: `labels` costs more than `inc`, and
        # every message passes here two or three times.
        child = self._email_children.get(status)
        if child is None:
            child = self._email_children[status] = self.emails.labels(status)
        child.inc(messages)
