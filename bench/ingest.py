"""Durable ingestion through /v1/batch: events per second acknowledged with 200.

Several connections post ~500 KB batches of typical `track` events (about 2,000 each) for a
fixed time against `mailpulse serve`; a 200 means every event of the batch is on disk in the
log. The same load against a bare ASGI endpoint that only reads the body (same server stack) is
the reference measured in the same run. Prints one JSON line with medians over runs; the
target is 50,000 events/s.

usage: python -m bench.ingest [--runs 3] [--seconds 5] [--connections 4]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time

import orjson
import uvloop

from bench.common import (
    RawHttp,
    TSink,
    bare_relay,
    build_tsink,
    mailpulse_server,
    median,
    workdir,
    write_bench_project,
)

TARGET_PER_S = 50_000
_ids = itertools.count()


def batch_body(max_bytes: int = 500_000) -> tuple[bytes, int]:
    """A batch of distinct `track` events just under the request limit."""
    events = []
    size = 20
    while True:
        n = next(_ids)
        event = {
            "type": "track",
            "userId": f"user-{n % 50_000}",
            "event": "Product Viewed",
            "messageId": f"ingest-{n}",
            "timestamp": "2026-11-28T10:00:00.000Z",
            "properties": {"product_id": f"p-{n % 977}", "price": 19.99, "currency": "USD"},
            "context": {"ip": "203.0.113.9", "library": {"name": "bench", "version": "1"}},
        }
        encoded = orjson.dumps(event)
        if size + len(encoded) + 1 > max_bytes:
            return orjson.dumps({"batch": events}), len(events)
        events.append(event)
        size += len(encoded) + 1


async def load(hostport: str, seconds: float, connections: int) -> float:
    """Events/s acknowledged over `seconds` with `connections` posting back to back."""
    http = RawHttp(hostport, connections=connections)
    await http.open()
    accepted = 0
    # Bodies are made before the clock starts: the generator must not compete for the CPU.
    bodies = [batch_body() for _ in range(int(seconds * 40) + connections)]
    queue = iter(bodies)
    deadline = time.perf_counter() + seconds

    async def poster() -> None:
        nonlocal accepted
        for body, count in queue:
            if time.perf_counter() >= deadline:
                return
            status = await http.post("/v1/batch", body)
            if status != 200:
                raise RuntimeError(f"/v1/batch answered {status}")
            accepted += count

    start = time.perf_counter()
    await asyncio.gather(*(poster() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    await http.close()
    return accepted / elapsed


async def one_run(seconds: float, connections: int) -> tuple[float, float]:
    with workdir() as tmp:
        sink = TSink(build_tsink(tmp), tmp)
        try:
            project = write_bench_project(tmp / "project", sink.port)
            with mailpulse_server(project, tmp / "data") as hostport:
                measured = await load(hostport, seconds, connections)
            with bare_relay(sink.port) as hostport:
                reference = await load(hostport, seconds, connections)
        finally:
            sink.stop()
    return measured, reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    results = [uvloop.run(one_run(args.seconds, args.connections)) for _ in range(args.runs)]
    events_per_s = median([r[0] for r in results])
    reference = median([r[1] for r in results])
    print(
        json.dumps(
            {
                "bench": "ingest",
                "runs": args.runs,
                "connections": args.connections,
                "events_per_s": round(events_per_s),
                "all_runs": [round(r[0]) for r in results],
                "reference": {
                    "what": "same batches to a bare ASGI endpoint that only reads the body",
                    "events_per_s": round(reference),
                },
                "vs_reference": round(events_per_s / reference, 3),
                "vs_target": round(events_per_s / TARGET_PER_S, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
