"""The dashboard's live figures from a real metric sampler over a real registry, at snapshot
times a test chooses: rates, latency quantiles, stage means and outcome shares as the
sampler's own rate and quantile tell them, and gaps where nothing can be told."""

from __future__ import annotations

import math

import pytest

from mailpulse.observe import Metrics
from mailpulse.observe.dashboard_live import LATENCY, SMOOTH, WINDOW, bucket_bounds, live_figures
from mailpulse.observe.sampler import MetricSampler


def sampled(steps: int, each: float = 1.0) -> tuple[Metrics, MetricSampler]:
    """A snapshot every `each` seconds, after 10 events, 4 sent, 1 bounced, 1 deferred,
    latencies of 3 ms (three) and 40 ms (one), a fold of 1 ms and an SMTP exchange of 4 ms."""
    metrics = Metrics()
    sampler = MetricSampler(metrics.registry)
    for step in range(steps):
        metrics.events.labels("track").inc(10)
        metrics.emails.labels("sent").inc(4)
        metrics.emails.labels("bounced").inc(1)
        metrics.emails.labels("deferred").inc(1)
        for seconds in (0.003, 0.003, 0.003, 0.04):
            metrics.event_to_smtp.observe(seconds)
        metrics.stage_fold.observe(0.001)
        metrics.stage_smtp.observe(0.004)
        metrics.queue_depth.labels("send").set(step)
        metrics.complaint_rate.set(0.002)
        sampler.sample_now(1000.0 + step * each)
    return metrics, sampler


def test_rates_quantiles_and_shares_agree_with_the_sampler() -> None:
    metrics, sampler = sampled(90)
    live = live_figures(sampler, bucket_bounds(metrics.registry, LATENCY), seconds=60)
    charts, t = live["charts"], live["t"]
    assert len(t) == 61 and t[-1] == 1089.0  # one point per snapshot in the last 60 s
    throughput = charts["throughput"]
    assert throughput["events/s"][-1] == pytest.approx(sampler.rate("mailpulse_events_total"))
    assert throughput["events/s"][-1] == pytest.approx(10.0)
    assert throughput["messages/s"][-1] == pytest.approx(4.0)
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        expected = sampler.quantile(LATENCY, q, window=WINDOW)
        assert expected is not None
        assert charts["latency"][name][-1] == pytest.approx(1000.0 * expected)
    assert 2.5 < charts["latency"]["p50"][-1] <= 3.0 < 25.0 < charts["latency"]["p99"][-1]
    assert charts["stages"]["fold"][-1] == pytest.approx(1.0)
    assert charts["stages"]["smtp"][-1] == pytest.approx(4.0)
    assert charts["stages"]["render"][-1] is None  # nothing rendered: no mean to tell
    outcomes = charts["outcomes"]
    assert outcomes["delivered %"][-1] == pytest.approx(80.0)  # 4 of the 5 that ended
    assert outcomes["bounced %"][-1] == pytest.approx(20.0)
    assert outcomes["deferred %"][-1] == pytest.approx(100.0 / 6)
    assert outcomes["complaints %"][-1] == pytest.approx(0.2)
    assert charts["queues"]["send"][-1] == 89.0
    assert charts["backlog"]["oldest due"][-1] == 0.0
    assert charts["errors"]["deferrals/s"][-1] == pytest.approx(1.0)
    assert live["totals"] == {
        "events": 900.0,
        "sent": 360.0,
        "deferred": 90.0,
        "bounced": 90.0,
        "errors": 0.0,
    }
    cpu = charts["cpu"]["server"]
    assert all(c is None or (c >= 0 and math.isfinite(c)) for c in cpu)
    assert charts["memory"]["server"][-1] > 1  # this very process's memory
    assert set(charts["memory"]["couriers"]) == {None}  # no courier process watched here


def test_rates_over_uneven_snapshots_and_gaps_at_the_start() -> None:
    metrics, sampler = sampled(12, each=2.0)  # a busy loop took a snapshot every 2 s
    metrics.complaint_rate.set(math.nan)  # the breaker's ratio without sends
    sampler.sample_now(1024.0)
    live = live_figures(sampler, bucket_bounds(metrics.registry, LATENCY), seconds=300)
    events = live["charts"]["throughput"]["events/s"]
    assert events[0] is None  # one snapshot tells no rate
    assert events[-2] == pytest.approx(5.0)  # 10 per snapshot, 2 s apart
    assert live["charts"]["outcomes"]["complaints %"][-1] is None
    assert live["charts"]["latency"]["p50"][0] is None
    assert SMOOTH < WINDOW


def test_nothing_sampled_yet() -> None:
    metrics = Metrics()
    live = live_figures(MetricSampler(metrics.registry), bucket_bounds(metrics.registry, LATENCY))
    assert live["t"] == [] and live["totals"]["sent"] is None
    assert live["charts"]["throughput"] == {"events/s": [], "messages/s": []}


def test_the_points_after_since_are_those_of_the_whole_history() -> None:
    metrics, sampler = sampled(150)
    bounds = bucket_bounds(metrics.registry, LATENCY)
    whole = live_figures(sampler, bounds, seconds=120)
    for k in (0, 30, 118, 119):
        since = whole["t"][k]
        after = live_figures(sampler, bounds, seconds=120, since=since)
        assert after["t"] == whole["t"][k + 1 :]
        for chart, series in whole["charts"].items():
            for name, points in series.items():
                assert after["charts"][chart][name] == points[k + 1 :], (chart, name, k)
        assert after["totals"] == whole["totals"]
    # A caller whose last point is older than the history asked for gets that history only.
    assert live_figures(sampler, bounds, seconds=120, since=0.0)["t"] == whole["t"]
