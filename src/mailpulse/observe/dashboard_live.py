"""The dashboard's live figures: the recent history of the metrics (a `MetricSampler`) turned
into what its charts draw, one point per snapshot, and the figures of its tiles.

Rates are taken over a few snapshots (`SMOOTH`), latency quantiles and the shares of outcomes
over a trailing window (`WINDOW`), so that a chart updated every second does not jump with
each second's handful of messages. A figure that cannot be told (no message sent in the
window, no snapshot yet) is None: a gap in its chart, a dash in its tile.

The page asks for its whole history once, then every second for the points after the last it
has (`since`): only those are worked out, from the snapshots of their windows, so that an open
dashboard costs the server's loop a fraction of a millisecond a second, not the whole history.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry

from mailpulse.observe.sampler import bucket_quantile

SMOOTH = 5.0  # seconds a rate is taken over
WINDOW = 60.0  # seconds a quantile or a share is taken over
STAGES = ("ingest", "fold", "render", "sign", "smtp")
QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
LATENCY = "mailpulse_event_to_smtp_seconds"
_EMAILS = "mailpulse_emails_total"
# A message's end at the receiving server, for the shares of outcomes.
_ENDS = ("sent", "bounced", "failed", "expired")
# A counter every registry has: it reads a value at every snapshot (0 before it counts).
_CLOCK = "mailpulse_events_total"

Labels = Mapping[str, str] | None
Figure = float | None


class Sampler(Protocol):
    def series(
        self, name: str, labels: Labels = None, seconds: float = 300.0
    ) -> list[tuple[float, float]]: ...


class _Aligned:
    """Series of one sampler on the times of its snapshots: those read (`times`, with the
    windows of the points shown) and the points shown (`shown`, indices into `times`)."""

    def __init__(self, sampler: Sampler, seconds: float, since: float | None) -> None:
        self._sampler = sampler
        newest = sampler.series(_CLOCK, None, 0.0)
        start = newest[0][0] - seconds if newest else 0.0
        if since is not None:
            start = max(start, since)
        # Back far enough for the windows of the first point shown.
        self._seconds = (newest[0][0] - start if newest else 0.0) + WINDOW
        self.times = [t for t, _ in sampler.series(_CLOCK, None, self._seconds)]
        first = bisect.bisect_left(self.times, start)
        if since is not None:
            first = max(first, bisect.bisect_right(self.times, since))
        self.shown = range(first, len(self.times))

    def values(self, name: str, labels: Labels = None) -> list[Figure]:
        at = dict(self._sampler.series(name, labels, self._seconds))
        return [at.get(t) for t in self.times]

    def each(self, figure: Callable[[int], Figure]) -> list[Figure]:
        return [figure(i) for i in self.shown]

    def shown_values(self, name: str, labels: Labels = None) -> list[Figure]:
        values = self.values(name, labels)
        return [values[i] for i in self.shown]

    def before(self, i: int, span: float) -> int:
        """The first snapshot at most `span` seconds before snapshot i."""
        return bisect.bisect_left(self.times, self.times[i] - span)

    def rate(self, values: Sequence[Figure], span: float = SMOOTH) -> list[Figure]:
        """A counter's increase per second over `span` before each snapshot shown."""

        def at(i: int) -> Figure:
            j = self.before(i, span)
            now, then, dt = values[i], values[j], self.times[i] - self.times[j]
            return None if now is None or then is None or dt <= 0 else (now - then) / dt

        return self.each(at)

    def increase(self, values: Sequence[Figure], i: int, span: float = WINDOW) -> Figure:
        now, then = values[i], values[self.before(i, span)]
        return None if now is None or then is None else now - then


def _percent(cores: Sequence[Figure]) -> list[Figure]:
    """CPU seconds per second as a percentage of one core."""
    return [None if c is None else 100.0 * c for c in cores]


def _megabytes(values: Sequence[Figure]) -> list[Figure]:
    return [None if v is None else v / 1e6 for v in values]


def _share(part: Figure, whole: Figure) -> Figure:
    return None if part is None or not whole else 100.0 * part / whole


def bucket_bounds(registry: CollectorRegistry, histogram: str) -> list[str]:
    """The `le` labels of a histogram's buckets, as its samples spell them."""
    for family in registry.collect():
        if family.name == histogram:
            found = {s.labels["le"] for s in family.samples if s.name == histogram + "_bucket"}
            return sorted(found, key=float)
    return []


def _latency(a: _Aligned, histogram: str, bounds: Sequence[str]) -> dict[str, list[Figure]]:
    """Quantiles in milliseconds over the trailing window at each snapshot shown."""
    buckets = [(float(le), a.values(histogram + "_bucket", {"le": le})) for le in bounds]
    out: dict[str, list[Figure]] = {name: [] for name, _ in QUANTILES}
    for i in a.shown:
        known = [(le, g) for le, values in buckets if (g := a.increase(values, i)) is not None]
        for name, q in QUANTILES:
            value = bucket_quantile(q, known) if known else None
            out[name].append(None if value is None else value * 1000.0)
    return out


def _stage_means(a: _Aligned) -> dict[str, list[Figure]]:
    """Mean time per stage in milliseconds over the trailing window at each snapshot shown."""
    out: dict[str, list[Figure]] = {}
    for stage in STAGES:
        total = a.values("mailpulse_stage_seconds_sum", {"stage": stage})
        count = a.values("mailpulse_stage_seconds_count", {"stage": stage})

        def mean(i: int, total: list[Figure] = total, count: list[Figure] = count) -> Figure:
            spent, n = a.increase(total, i), a.increase(count, i)
            return None if spent is None or not n else 1000.0 * spent / n

        out[stage] = a.each(mean)
    return out


def live_figures(
    sampler: Sampler,
    latency_bounds: Sequence[str],
    seconds: float = 300.0,
    since: float | None = None,
) -> dict[str, object]:
    """Everything the dashboard's charts and tiles show: the points of the last `seconds`, or
    only those after `since` (a snapshot's time the caller has); `latency_bounds`: the
    buckets of mailpulse_event_to_smtp_seconds (`bucket_bounds`)."""
    a = _Aligned(sampler, seconds, since)
    emails = {s: a.values(_EMAILS, {"status": s}) for s in (*_ENDS, "deferred")}
    events_total = a.values(_CLOCK)
    errors_total = a.values("mailpulse_errors_total")

    def window_share(part: Sequence[Figure], whole: Sequence[Sequence[Figure]]) -> list[Figure]:
        def at(i: int) -> Figure:
            parts = [a.increase(column, i) for column in whole]
            total = None if any(p is None for p in parts) else sum(p for p in parts if p)
            return _share(a.increase(part, i), total)

        return a.each(at)

    attempts = [*(emails[s] for s in _ENDS), emails["deferred"]]
    charts = {
        "throughput": {
            "events/s": a.rate(events_total),
            "messages/s": a.rate(emails["sent"]),
        },
        "latency": _latency(a, LATENCY, latency_bounds),
        "stages": _stage_means(a),
        "errors": {
            "errors/s": a.rate(errors_total),
            "deferrals/s": a.rate(emails["deferred"]),
            "bounces/s": a.rate(emails["bounced"]),
        },
        "outcomes": {
            "delivered %": window_share(emails["sent"], [emails[s] for s in _ENDS]),
            "bounced %": window_share(emails["bounced"], [emails[s] for s in _ENDS]),
            "deferred %": window_share(emails["deferred"], attempts),
            "complaints %": [
                None if v is None or math.isnan(v) else 100.0 * v
                for v in a.shown_values("mailpulse_complaint_rate_ratio")
            ],
        },
        "queues": {
            "fold": a.shown_values("mailpulse_queue_depth", {"queue": "fold"}),
            "send": a.shown_values("mailpulse_queue_depth", {"queue": "send"}),
            "smtp in flight": a.shown_values("mailpulse_smtp_in_flight"),
        },
        "backlog": {"oldest due": a.shown_values("mailpulse_outbox_backlog_seconds")},
        "cpu": {
            "server": _percent(a.rate(a.values("mailpulse_process_cpu_seconds_total"))),
            "couriers": _percent(a.rate(a.values("mailpulse_courier_cpu_seconds_total"))),
        },
        "memory": {
            "server": _megabytes(a.shown_values("mailpulse_process_resident_memory_bytes")),
            "couriers": _megabytes(a.shown_values("mailpulse_courier_resident_memory_bytes")),
        },
    }
    return {
        "t": [a.times[i] for i in a.shown],
        "charts": charts,
        "totals": {
            "events": _last(events_total),
            "sent": _last(emails["sent"]),
            "deferred": _last(emails["deferred"]),
            "bounced": _last(emails["bounced"]),
            "errors": _last(errors_total),
        },
    }


def _last(values: Sequence[Figure]) -> Figure:
    return values[-1] if values else None
