"""CPU and memory of the courier processes, beside the server's own (`ProcessCollector`).

prometheus_client's ProcessCollector reads one process and names it without labels; the
couriers are several children whose pids change when one is restarted, so each is read with
a ProcessCollector of its own, asked afresh at every scrape, and labelled by its place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# What is kept of each child: ProcessCollector's name for it, and ours.
_CPU = ("process_cpu_seconds_total", "mailpulse_courier_cpu_seconds_total")
_RSS = ("process_resident_memory_bytes", "mailpulse_courier_resident_memory_bytes")


class CourierProcessCollector(Collector):
    def __init__(self, pids: Callable[[], Sequence[int | None]]) -> None:
        """`pids`: the couriers' process ids in their order, None for one not running."""
        self._pids = pids
        self._readers: dict[int, ProcessCollector] = {}  # by pid: each reads /proc once made

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        cpu = CounterMetricFamily(
            _CPU[1].removesuffix("_total"),
            "User and system CPU time each courier process has spent, by its place in the "
            "pool (a restarted courier starts again from 0).",
            labels=["courier"],
        )
        rss = GaugeMetricFamily(
            _RSS[1], "Resident memory of each courier process, by its place.", labels=["courier"]
        )
        pids = list(self._pids())
        self._readers = {pid: self._readers.get(pid) or _reader(pid) for pid in pids if pid}
        for place, pid in enumerate(pids):
            if pid is None:
                continue
            read = {
                sample.name: sample.value
                for family in self._readers[pid].collect()
                for sample in family.samples
            }
            if _CPU[0] in read:
                cpu.add_metric([str(place)], read[_CPU[0]])
            if _RSS[0] in read:
                rss.add_metric([str(place)], read[_RSS[0]])
        return [cpu, rss]


def _reader(pid: int) -> ProcessCollector:
    return ProcessCollector(pid=lambda: pid, registry=None)
