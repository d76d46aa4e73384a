"""The metric sampler against brute force: rates and increases are what the counters were
given inside the window; a quantile lands in the bucket that holds the true quantile of what
the histogram observed in the window (and interpolates as Prometheus does); the ring keeps
`keep` snapshots; process CPU and memory are among the samples."""

from __future__ import annotations

import asyncio
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from mailpulse.observe import Metrics
from mailpulse.observe.processes import CourierProcessCollector
from mailpulse.observe.sampler import MetricSampler, bucket_quantile

BOUNDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)

steps = st.lists(
    st.tuples(
        st.floats(0.1, 5.0),  # seconds since the previous snapshot
        st.sampled_from(["sent", "bounced", "deferred"]),
        st.integers(0, 20),  # what that status is counted by before the snapshot
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps=steps, window=st.floats(0.5, 60.0), status=st.sampled_from([None, "bounced"]))
def test_rate_and_increase_are_what_was_counted_inside_the_window(
    steps: list[tuple[float, str, int]], window: float, status: str | None
) -> None:
    registry = CollectorRegistry()
    emails = Counter("t_emails_total", "", ["status"], registry=registry)
    sampler = MetricSampler(registry, keep=1000)
    at, taken = 1_000.0, []  # (time, what `status` was counted by just before it)
    sampler.sample_now(at)
    taken.append((at, 0))
    for gap, counted, by in steps:
        emails.labels(counted).inc(by)
        at += gap
        sampler.sample_now(at)
        taken.append((at, by if status in (None, counted) else 0))
    inside = [(t, by) for t, by in taken if t >= at - window]
    labels = None if status is None else {"status": status}
    if len(inside) < 2:
        assert sampler.increase("t_emails_total", labels, window) is None
        assert sampler.rate("t_emails_total", labels, window) is None
        return
    # What was counted before the window's first snapshot is not in it.
    expected = sum(by for _, by in inside[1:])
    assert sampler.increase("t_emails_total", labels, window) == expected
    span = inside[-1][0] - inside[0][0]
    assert sampler.rate("t_emails_total", labels, window) == pytest.approx(expected / span)


def true_quantile_bucket(values: list[float], q: float) -> tuple[float, float]:
    """The bucket (lower, upper] that holds the ceil(q·n)-th smallest value."""
    k = max(1, math.ceil(q * len(values)))
    v = sorted(values)[k - 1]
    lower = 0.0
    for upper in BOUNDS:
        if v <= upper:
            return lower, upper
        lower = upper
    return math.inf, math.inf


observations = st.lists(
    st.lists(st.floats(0.0, 2.0, allow_nan=False), max_size=30), min_size=1, max_size=10
)


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(st.floats(0.0, 2.0), max_size=20),
    batches=observations,
    q=st.floats(0.01, 1.0),
    kept=st.integers(1, 10),
)
def test_quantile_lands_in_the_bucket_of_the_true_quantile(
    before: list[float], batches: list[list[float]], q: float, kept: int
) -> None:
    registry = CollectorRegistry()
    latency = Histogram("t_latency_seconds", "", ["stage"], buckets=BOUNDS, registry=registry)
    sampler = MetricSampler(registry, keep=kept + 1)
    for value in before:  # observed before the window: must not count
        latency.labels("smtp").observe(value)
        latency.labels("fold").observe(value)
    sampler.sample_now(0.0)
    for n, batch in enumerate(batches[-kept:], start=1):
        for value in batch:
            latency.labels("smtp").observe(value)
        sampler.sample_now(float(n))
    window = float(len(batches[-kept:]))
    seen = [v for batch in batches[-kept:] for v in batch]
    result = sampler.quantile("t_latency_seconds", q, window, {"stage": "smtp"})
    if not seen:
        assert result is None
        return
    assert result is not None
    lower, upper = true_quantile_bucket(seen, q)
    if math.isinf(upper):
        assert result == BOUNDS[-1]  # beyond the highest bound: the highest bound
    else:
        # Within the bucket, to the rounding of lower + (upper - lower) * share (0.1 + 0.4).
        assert lower - 1e-12 <= result <= upper + 1e-12
    # Summed over every stage, the fold's observations (all before the window) change nothing.
    assert sampler.quantile("t_latency_seconds", q, window) == result


def test_quantile_interpolates_as_prometheus_does() -> None:
    # 100 observations: 50 up to 0.1, 40 more up to 0.5, 10 beyond 1.
    buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 90.0), (math.inf, 100.0)]
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.1)
    assert bucket_quantile(0.25, buckets) == pytest.approx(0.05)
    assert bucket_quantile(0.7, buckets) == pytest.approx(0.1 + 0.4 * 20 / 40)
    assert bucket_quantile(0.95, buckets) == 1.0  # in +Inf: the highest finite bound
    assert bucket_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert bucket_quantile(0.5, [(0.1, 3.0)]) is None  # no +Inf bucket
    with pytest.raises(ValueError, match="between 0 and 1"):
        MetricSampler(CollectorRegistry()).quantile("x", 1.5)


def test_a_counter_never_counted_reads_zero_and_a_gauge_without_value_is_left_out() -> None:
    registry = CollectorRegistry()
    emails = Counter("t_emails_total", "", ["status"], registry=registry)
    depth = Gauge("t_depth", "", ["queue"], registry=registry)
    sampler = MetricSampler(registry)
    sampler.sample_now(10.0)
    emails.labels("bounced").inc(3)
    sampler.sample_now(11.0)
    depth.labels("fold").set(7)
    sampler.sample_now(12.0)
    assert sampler.increase("t_emails_total", {"status": "sent"}) == 0
    assert sampler.increase("t_emails_total", {"status": "bounced"}) == 3
    assert sampler.series("t_emails_total") == [(10.0, 0.0), (11.0, 3.0), (12.0, 3.0)]
    assert sampler.series("t_depth", {"queue": "fold"}) == [(12.0, 7.0)]
    assert sampler.series("t_depth", {"queue": "send"}) == []
    assert sampler.series("no_such_metric") == []
    assert sampler.rate("no_such_metric_total") is None
    assert sampler.series("t_emails_created") == []  # timestamps are not samples


def test_the_ring_keeps_only_the_newest_snapshots() -> None:
    registry = CollectorRegistry()
    Gauge("t_depth", "", registry=registry).set(1)
    sampler = MetricSampler(registry, keep=3)
    for at in range(10):
        sampler.sample_now(float(at))
    assert [t for t, _ in sampler.series("t_depth", seconds=1e9)] == [7.0, 8.0, 9.0]
    with pytest.raises(ValueError):
        MetricSampler(registry, keep=1)
    with pytest.raises(ValueError):
        MetricSampler(registry, interval=0)


async def test_run_samples_every_interval_until_cancelled() -> None:
    registry = CollectorRegistry()
    Gauge("t_depth", "", registry=registry).set(1)
    sampler = MetricSampler(registry, interval=0.01)
    task = asyncio.create_task(sampler.run())
    while len(sampler.series("t_depth")) < 3:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_process_cpu_and_memory_are_sampled_for_the_server_and_its_couriers() -> None:
    metrics = Metrics()
    metrics.watch_couriers(lambda: [None, os.getpid()])
    sampler = MetricSampler(metrics.registry)
    sampler.sample_now(1.0)
    sampler.sample_now(2.0)
    assert sampler.series("mailpulse_process_resident_memory_bytes")[-1][1] > 1e6
    assert sampler.series("mailpulse_process_cpu_seconds_total")[-1][1] > 0
    # The courier in place 0 is not running: nothing is reported for it.
    assert sampler.series("mailpulse_courier_resident_memory_bytes", {"courier": "0"}) == []
    rss = sampler.series("mailpulse_courier_resident_memory_bytes", {"courier": "1"})
    assert rss and rss[-1][1] > 1e6
    assert sampler.series("mailpulse_courier_cpu_seconds_total", {"courier": "1"})[-1][1] > 0


def test_a_dead_couriers_pid_reports_nothing() -> None:
    collector = CourierProcessCollector(lambda: [2**22 + 12345])  # beyond pid_max: none such
    assert [family.samples for family in collector.collect()] == [[], []]
