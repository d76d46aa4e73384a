"""Recent history of a Prometheus registry, kept in memory: what the dashboard charts and the
alert rules judge, without a Prometheus server.

Every `interval` seconds one snapshot of every sample in the registry is kept: its time and an
array of floats, one per series (a sample name and its labels), in a ring of `keep` snapshots.
A series seen for the first time gets the next column, so older snapshots are shorter than
newer ones; a counter (or a histogram's `_bucket`, `_count`, `_sum`) absent from a snapshot was
not counted yet and reads 0, a gauge absent from it has no value there.

Windows are reckoned back from the newest snapshot, not from the wall clock, so a question asked
between two snapshots gets the same answer as one asked at the newest.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from array import array
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

# The samples of a family that only ever grow, by family type; `_created` (a timestamp) and
# `_gcount`/`_gsum` are left out.
_CUMULATIVE_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
}
_KEPT_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
}


@dataclass(frozen=True)
class _Column:
    index: int
    labels: Mapping[str, str]
    cumulative: bool


class MetricSampler:
    def __init__(
        self, registry: CollectorRegistry, *, interval: float = 1.0, keep: int = 900
    ) -> None:
        if interval <= 0 or keep < 2:
            raise ValueError("a sampler needs an interval above 0 and keeps at least 2 snapshots")
        self.interval = interval
        self._registry = registry
        self._snapshots: deque[tuple[float, array[float]]] = deque(maxlen=keep)
        self._columns: dict[tuple[str, tuple[tuple[str, str], ...]], _Column] = {}
        self._by_name: dict[str, list[_Column]] = {}
        # Counters that exist but were never counted (a labelled counter without children
        # has no samples): they read 0, not "unknown".
        self._cumulative_names: set[str] = set()

    def sample_now(self, now: float | None = None) -> None:
        """Keep one snapshot of every sample in the registry, taken at `now`."""
        at = time.time() if now is None else now
        values: dict[int, float] = {}
        for family in self._registry.collect():
            kept = _KEPT_SUFFIXES.get(family.type)
            if kept is None:
                continue
            cumulative = family.type in _CUMULATIVE_SUFFIXES
            if cumulative:
                self._cumulative_names.update(family.name + s for s in kept)
            for sample in family.samples:
                if sample.name[len(family.name) :] not in kept:
                    continue
                values[self._column(sample.name, sample.labels, cumulative).index] = sample.value
        row = array("d", [math.nan]) * len(self._columns)
        for index, value in values.items():
            row[index] = value
        self._snapshots.append((at, row))

    async def run(self) -> None:
        """Take a snapshot every `interval` seconds until cancelled."""
        while True:
            self.sample_now()
            await asyncio.sleep(self.interval)

    def _column(self, name: str, labels: Mapping[str, str], cumulative: bool) -> _Column:
        key = (name, tuple(sorted(labels.items())))
        column = self._columns.get(key)
        if column is None:
            column = _Column(len(self._columns), dict(labels), cumulative)
            self._columns[key] = column
            self._by_name.setdefault(name, []).append(column)
        return column

    def series(
        self, name: str, labels: Mapping[str, str] | None = None, seconds: float = 300.0
    ) -> list[tuple[float, float]]:
        """(unix time, value) of one sample name over the last `seconds`, summed over every
        series whose labels include `labels`. A counter not counted yet reads 0; a gauge
        without a value in a snapshot leaves that snapshot out."""
        columns, cumulative = self._matching(name, labels)
        if not self._snapshots or (not columns and not cumulative):
            return []
        since = self._snapshots[-1][0] - seconds
        points = []
        for at, row in self._window(since):
            total, seen = _sum(row, columns)
            if seen or cumulative:
                points.append((at, total))
        return points

    def _matching(self, name: str, labels: Mapping[str, str] | None) -> tuple[list[_Column], bool]:
        wanted = (labels or {}).items()
        columns = [c for c in self._by_name.get(name, ()) if wanted <= c.labels.items()]
        return columns, name in self._cumulative_names or any(c.cumulative for c in columns)

    def _window(self, since: float) -> Iterable[tuple[float, array[float]]]:
        # Snapshots are in time order: walk back from the newest and stop at the window's start.
        taken = []
        for snapshot in reversed(self._snapshots):
            if snapshot[0] < since:
                break
            taken.append(snapshot)
        return reversed(taken)

    def _ends(
        self, name: str, labels: Mapping[str, str] | None, window: float
    ) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """The first and the last point of `series` over the window, or None with fewer than
        two. A counter's are read from two snapshots alone (found by bisection): the alert
        rules ask for many increases over windows of hundreds of snapshots every second."""
        columns, cumulative = self._matching(name, labels)
        if not cumulative:
            points = self.series(name, labels, window)
            return (points[0], points[-1]) if len(points) >= 2 else None
        if not self._snapshots:
            return None
        newest = self._snapshots[-1][0]
        first = bisect.bisect_left(self._snapshots, newest - window, key=_time_of)
        if first >= len(self._snapshots) - 1:
            return None
        (t0, row0), (t1, row1) = self._snapshots[first], self._snapshots[-1]
        return (t0, _sum(row0, columns)[0]), (t1, _sum(row1, columns)[0])

    def increase(
        self, name: str, labels: Mapping[str, str] | None = None, window: float = 60.0
    ) -> float | None:
        """How much a counter grew over the window (the newest value less the oldest in it);
        None without two snapshots in the window."""
        ends = self._ends(name, labels, window)
        return None if ends is None else ends[1][1] - ends[0][1]

    def rate(
        self, name: str, labels: Mapping[str, str] | None = None, window: float = 60.0
    ) -> float | None:
        """A counter's increase per second over the window; None without two snapshots in it."""
        ends = self._ends(name, labels, window)
        if ends is None or ends[1][0] <= ends[0][0]:
            return None
        return (ends[1][1] - ends[0][1]) / (ends[1][0] - ends[0][0])

    def quantile(
        self,
        histogram: str,
        q: float,
        window: float = 60.0,
        labels: Mapping[str, str] | None = None,
    ) -> float | None:
        """The q-quantile (0 ≤ q ≤ 1) of what a histogram observed over the window, from the
        increase of each bucket, interpolated within a bucket as Prometheus's
        histogram_quantile does. None without two snapshots or without observations."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile is between 0 and 1, not {q}")
        wanted = dict(labels or {})
        bounds = {
            c.labels["le"]
            for c in self._by_name.get(histogram + "_bucket", ())
            if "le" in c.labels and wanted.items() <= c.labels.items()
        }
        buckets = []
        for le in bounds:
            grown = self.increase(histogram + "_bucket", {**wanted, "le": le}, window)
            if grown is None:
                return None
            buckets.append((float(le), grown))
        return bucket_quantile(q, buckets)


def _time_of(snapshot: tuple[float, array[float]]) -> float:
    return snapshot[0]


def _sum(row: array[float], columns: Iterable[_Column]) -> tuple[float, bool]:
    """The sum of the columns a snapshot has a value for, and whether it has any."""
    total, seen = 0.0, False
    for column in columns:
        if column.index < len(row) and not math.isnan(row[column.index]):
            total += row[column.index]
            seen = True
    return total, seen


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative buckets (upper bound, count), the last
    of them +Inf: None without a +Inf bucket or without observations."""
    ordered = sorted(buckets)
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    # Counts read at slightly different moments may dip; Prometheus evens them out the same way.
    counts, highest = [], 0.0
    for _, count in ordered:
        highest = max(highest, count)
        counts.append(highest)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    i = next(i for i, count in enumerate(counts) if count >= rank)
    if i == len(ordered) - 1:
        return ordered[-2][0]  # in the +Inf bucket: the highest finite bound is all we know
    upper = ordered[i][0]
    if i == 0 and upper <= 0:
        return upper
    lower = 0.0 if i == 0 else ordered[i - 1][0]
    below = 0.0 if i == 0 else counts[i - 1]
    in_bucket = counts[i] - below
    if in_bucket <= 0:
        return lower  # q = 0 over an empty first bucket
    return lower + (upper - lower) * (rank - below) / in_bucket
