"""Scale-out throughput: events/s accepted and messages/s delivered with 1 and 2 workers.

Every configuration first identifies `--events` contacts (outside the measured window, waiting
until the fold has them all), then offers a burst of as many `Order Completed` events, one per
contact, as fast as the API answers over `--connections` keep-alive connections; each event
triggers one personalized, DKIM-signed receipt to its own recipient at the C sink (tsink).
events/s = events answered 200 / (last 200 - first POST); messages/s = receipts the sink took
with 250 / (last 250 - first POST).

Configurations, interleaved run by run: embedded (`mailpulse serve` on SQLite); scale-out with
one API node and 1 or 2 workers (`mailpulse worker`) on `--partitions` partitions, over one
PostgreSQL and one NATS JetStream from the dev-dependency wheels, with a fresh database and
stream per run, measured once every partition is owned; and the reference of
trigger_latency, a bare HTTP-to-SMTP relay on the same server stack.

On a small machine every process of a deployment competes for the same cores, so the CPU
seconds each kind of process used in the window are measured too (from /proc), beside what
the rest of the machine used in it.

Prints one JSON line: per configuration the medians over runs, every run's [events/s,
messages/s], the window (first POST to the last 250), the cores kept busy in it, the CPU
seconds per kind of process and per message; the ratios of scale-out to embedded and of
embedded to the reference; and what limits scaling here.

usage: python -m bench.scale_out [--runs 3] [--events 3000] [--connections 32] [--partitions 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench.common import (
    RawHttp,
    ScaleOut,
    TSink,
    bare_relay,
    build_tsink,
    cpu_count,
    cpu_seconds,
    identify_contacts,
    machine_cpu_seconds,
    mailpulse_server,
    mailpulse_worker,
    median,
    order_completed,
    wait_identified,
    workdir,
    write_bench_project,
)
from bench.servers import (
    NatsServer,
    Postgres,
    create_database,
    database_dsn,
    delete_stream,
    drop_database,
    embedded_postgres,
    wait_partitions_owned,
)

EMBEDDED, REFERENCE = "embedded", "reference"
WORKERS = {"1_worker": 1, "2_workers": 2}
CONFIGS = (EMBEDDED, *WORKERS, REFERENCE)
OTHERS = "rest of the machine"
# A burst whose deliveries stop coming for this long has lost some: measure what arrived.
STALL_S = 10.0


@dataclass(frozen=True)
class Servers:
    postgres: Postgres
    nats: NatsServer
    tsink: Path


@dataclass(frozen=True)
class Burst:
    started: float  # epoch seconds, like tsink's stamps
    accepted: int
    accepted_in: float  # seconds from the first POST to the last 200
    window: float  # seconds from the first POST until the sink had them all (or stalled)
    cpu: dict[str, float]  # CPU seconds in the window per kind of process


@dataclass(frozen=True)
class Result:
    events_per_s: float
    messages_per_s: float
    delivered: int
    window: float
    cpu: dict[str, float]


async def wait_delivered(sink: TSink, expected: int) -> None:
    count, progress_at = 0, time.monotonic()
    while count < expected and time.monotonic() - progress_at < STALL_S:
        # tsink is another process: its count can only be polled.
        await asyncio.sleep(0.02)
        if (now := sink.count()) > count:
            count, progress_at = now, time.monotonic()


async def burst(
    hostport: str, emails: list[str], connections: int, sink: TSink, roots: dict[int, str]
) -> Burst:
    """Every event as soon as a connection is free; returns once the sink has the mail.
    `roots` are the process trees whose CPU is counted (see `cpu_seconds`)."""
    http = RawHttp(hostport, connections=connections)
    await http.open()
    # Bodies are made before the clock starts: the generator must not compete for the CPU.
    bodies = iter([order_completed(email, n) for n, email in enumerate(emails)])
    accepted = 0

    async def poster() -> None:
        nonlocal accepted
        for body in bodies:
            if await http.post("/v1/track", body) == 200:
                accepted += 1

    cpu_before, machine_before = cpu_seconds(roots), machine_cpu_seconds()
    started, clock = time.time(), time.perf_counter()
    await asyncio.gather(*(poster() for _ in range(connections)))
    accepted_in = time.perf_counter() - clock
    await http.close()
    await wait_delivered(sink, accepted)
    window = time.perf_counter() - clock
    cpu_after, machine_after = cpu_seconds(roots), machine_cpu_seconds()
    cpu = {kind: cpu_after[kind] - cpu_before.get(kind, 0.0) for kind in cpu_after}
    # The machine is shared: what others ran in the window took cores from the deployment.
    cpu[OTHERS] = max(0.0, machine_after - machine_before - sum(cpu.values()))
    return Burst(started, accepted, accepted_in, window, cpu)


@contextlib.asynccontextmanager
async def scale_out(
    project: Path, servers: Servers, workers: int, partitions: int
) -> AsyncIterator[str]:
    """One API node and `workers` workers on a database and a stream of their own, settled:
    every partition owned."""
    database = f"mp_bench_{uuid.uuid4().hex[:12]}"
    await create_database(servers.postgres.dsn, database)
    deployment = ScaleOut(
        store=database_dsn(servers.postgres.dsn, database),
        bus=servers.nats.url,
        partitions=partitions,
        bus_prefix=f"b{uuid.uuid4().hex[:12]}",
    )
    try:
        with mailpulse_server(project, deployment) as hostport, contextlib.ExitStack() as nodes:
            for _ in range(workers):
                nodes.enter_context(mailpulse_worker(project, deployment))
            await wait_partitions_owned(deployment.store, partitions, workers)
            yield hostport
    finally:
        await delete_stream(servers.nats.url, deployment.bus_prefix)
        await drop_database(servers.postgres.dsn, database)


@contextlib.asynccontextmanager
async def deploy(
    config: str, tmp: Path, sink: TSink, servers: Servers, partitions: int
) -> AsyncIterator[tuple[str, int]]:
    """The configuration's HTTP address and its partitions (0 for the reference, which keeps
    no contacts)."""
    if config == REFERENCE:
        with bare_relay(sink.port) as hostport:
            yield hostport, 0
        return
    project = write_bench_project(tmp / "project", sink.port)
    if config == EMBEDDED:
        with mailpulse_server(project, tmp / "data") as hostport:
            yield hostport, 1
    else:
        async with scale_out(project, servers, WORKERS[config], partitions) as hostport:
            yield hostport, partitions


async def one_run(config: str, servers: Servers, args: argparse.Namespace) -> Result:
    emails = [f"c{n}@bench.example.org" for n in range(args.events)]
    # The deployment's processes are the bench's children; PostgreSQL's postmaster is not,
    # pg_ctl leaves it detached.
    roots = {os.getpid(): "load generator", servers.postgres.pid: "postgres"}
    with workdir() as tmp:
        sink = TSink(servers.tsink, tmp)
        try:
            async with deploy(config, tmp, sink, servers, args.partitions) as (hostport, parts):
                if parts:
                    await identify_contacts(hostport, emails)
                    await wait_identified(hostport, emails, parts)
                measured = await burst(hostport, emails, args.connections, sink, roots)
        finally:
            # After the nodes have stopped: their couriers say QUIT to the sink on the way out.
            stamps = sink.stop()
    delivered = [stamps[e] for e in emails if e in stamps]
    return Result(
        events_per_s=measured.accepted / measured.accepted_in,
        messages_per_s=len(delivered) / (max(delivered) - measured.started) if delivered else 0,
        delivered=len(delivered),
        window=measured.window,
        cpu=measured.cpu,
    )


@dataclass(frozen=True)
class Summary:
    """One configuration over its runs: medians, and every run's figures."""

    events_per_s: float
    messages_per_s: float
    all_runs: list[tuple[int, int]]
    delivered: int  # in the run that delivered fewest
    window: float
    cpu: dict[str, float]

    @classmethod
    def of(cls, results: list[Result]) -> Summary:
        kinds = sorted({kind for r in results for kind in r.cpu})
        return cls(
            events_per_s=median([r.events_per_s for r in results]),
            messages_per_s=median([r.messages_per_s for r in results]),
            all_runs=[(round(r.events_per_s), round(r.messages_per_s)) for r in results],
            delivered=min(r.delivered for r in results),
            window=median([r.window for r in results]),
            cpu={kind: median([r.cpu.get(kind, 0.0) for r in results]) for kind in kinds},
        )

    @property
    def cores_busy(self) -> float:
        """Cores kept busy on average over the window, by anyone: the machine's count means
        the window was CPU-bound."""
        return sum(self.cpu.values()) / self.window

    @property
    def cpu_ms_per_message(self) -> float:
        """What one message cost the deployment's processes, the load generator included."""
        ours = sum(seconds for kind, seconds in self.cpu.items() if kind != OTHERS)
        return 1000 * ours / self.delivered if self.delivered else float("nan")

    def vs(self, other: Summary, against: str) -> dict[str, float]:
        return {
            f"events_vs_{against}": round(self.events_per_s / other.events_per_s, 2),
            f"messages_vs_{against}": round(self.messages_per_s / other.messages_per_s, 2),
        }

    def as_json(self) -> dict[str, object]:
        return {
            "events_per_s": round(self.events_per_s),
            "messages_per_s": round(self.messages_per_s),
            "all_runs": self.all_runs,
            "delivered": self.delivered,
            "window_s": round(self.window, 2),
            "cores_busy": round(self.cores_busy, 2),
            "cpu_ms_per_message": round(self.cpu_ms_per_message, 2),
            "cpu_s": {kind: round(seconds, 2) for kind, seconds in self.cpu.items()},
        }


def limits(summaries: dict[str, Summary], cores: int) -> str:
    busy = ", ".join(f"{c} {summaries[c].cores_busy:.1f}" for c in (EMBEDDED, *WORKERS))
    widest = max(WORKERS, key=WORKERS.__getitem__)
    scaled, embedded = summaries[widest], summaries[EMBEDDED]
    spent = sorted(scaled.cpu.items(), key=lambda kv: -kv[1])[:5]
    return (
        f"CPU: the API node, PostgreSQL, NATS, every worker and its courier, the sink and the "
        f"load generator share {cores} cores, so another worker adds processes but no cores. "
        f"Cores busy on average in the window, counting every process on the machine: {busy}. "
        f"A message costs {scaled.cpu_ms_per_message:.1f} ms of CPU with {widest} against "
        f"{embedded.cpu_ms_per_message:.1f} ms embedded, which caps {cores} cores near "
        f"{cores * 1000 / scaled.cpu_ms_per_message:.0f} messages/s. CPU seconds with "
        f"{widest}, in a {scaled.window:.1f} s window: "
        + ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in spent)
    )


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, list[Result]] = {config: [] for config in CONFIGS}
    with workdir() as tmp, embedded_postgres() as postgres, contextlib.ExitStack() as stack:
        nats = NatsServer()
        stack.callback(nats.remove)
        nats.start()
        servers = Servers(postgres, nats, build_tsink(tmp))
        # Run by run rather than configuration by configuration: drift in the machine's load
        # (it is shared) then weighs on every configuration alike.
        for _ in range(args.runs):
            for config in CONFIGS:
                results[config].append(await one_run(config, servers, args))
    summaries = {config: Summary.of(rs) for config, rs in results.items()}
    embedded, reference = summaries[EMBEDDED], summaries[REFERENCE]
    return {
        "bench": "scale_out",
        "runs": args.runs,
        "events": args.events,
        "connections": args.connections,
        "partitions": args.partitions,
        "cores": cpu_count(),
        "embedded": embedded.as_json() | embedded.vs(reference, "reference"),
        "scale_out": {
            config: summaries[config].as_json() | summaries[config].vs(embedded, "embedded")
            for config in WORKERS
        },
        "reference": {
            "what": "bare HTTP-to-SMTP relay, same server stack, no storage/render/DKIM",
            "events_per_s": round(reference.events_per_s),
            "messages_per_s": round(reference.messages_per_s),
        },
        "limited_by": limits(summaries, cpu_count()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(uvloop.run(main_async(args))))


if __name__ == "__main__":
    main()
