"""Event to inbox: from the POST of a track event to the SMTP 250 at the sink.

Drives `Order Completed` events at fixed offered rates (open loop: sends are scheduled by the
clock, not by answers) against `mailpulse serve`; every event triggers one personalized,
DKIM-signed receipt to its own recipient at the C sink (tsink), which timestamps each 250.
Prints one JSON line: per offered rate the medians over runs of p50/p99/p99.9 in ms, the
highest sustained rate, and the ratio of each p50/p99 at 1,000/s to the budget
(p50 5 ms, p99 25 ms).

usage: python bench/trigger_latency.py [--runs 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import uvloop

from bench.common import (
    RawHttp,
    TSink,
    bare_relay,
    build_tsink,
    identify_contacts,
    mailpulse_server,
    median,
    order_completed,
    percentile,
    workdir,
    write_bench_project,
)

FIXED_RATES = (100, 1000)
PROBE_RATES = (1200, 1400, 1600, 2000, 2500, 3000)
BUDGET_P50_MS, BUDGET_P99_MS = 5.0, 25.0


async def drive(http: RawHttp, rate: int, emails: list[str], sent: dict[str, float]) -> int:
    """Offer `len(emails)` events at `rate`/s; returns how many got a non-200."""
    failures = 0
    start = time.perf_counter() + 0.05
    wall0 = time.time() + 0.05

    async def one(i: int, email: str) -> None:
        nonlocal failures
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[email] = wall0 + (time.perf_counter() - start)
        if await http.post("/v1/track", order_completed(email, i)) != 200:
            failures += 1

    await asyncio.gather(*(one(i, e) for i, e in enumerate(emails)))
    return failures


async def offer_rates(
    hostport: str,
    rates: list[int],
    plan: dict[int, list[str]],
    sent: dict[str, float],
    sink: TSink,
    expected: int,
) -> tuple[dict[int, dict[str, float]], int]:
    """Offer each rate in turn until one leaves a backlog; returns per-rate counts."""
    results: dict[int, dict[str, float]] = {}
    http = RawHttp(hostport, connections=64)
    await http.open()
    for rate in rates:
        failures = await drive(http, rate, plan[rate], sent)
        expected += len(plan[rate])
        offered_until = time.time()
        # tsink is another process: its count can only be polled.
        while sink.count() < expected and time.time() < offered_until + 10:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        results[rate] = {"failures": failures, "offered": len(plan[rate])}
        # A rate that leaves a backlog of more than a second is past saturation: higher ones
        # would only pile up.
        if failures or time.time() - offered_until > 1.0:
            break
    await http.close()
    return results, expected


def latencies(
    results: dict[int, dict[str, float]],
    plan: dict[int, list[str]],
    sent: dict[str, float],
    stamps: dict[str, float],
) -> None:
    for rate, info in results.items():
        lat = [(stamps[e] - sent[e]) * 1000 for e in plan[rate] if e in stamps and e in sent]
        info.update(
            delivered=len(lat),
            p50=percentile(lat, 50),
            p99=percentile(lat, 99),
            p999=percentile(lat, 99.9),
        )


async def one_run(seconds: float) -> tuple[dict[int, dict[str, float]], dict[str, float]]:
    rates = [*FIXED_RATES, *PROBE_RATES]
    plan = {
        rate: [f"r{rate}-{i}@bench.example.org" for i in range(int(rate * seconds))]
        for rate in rates
    }
    reference_plan = {1000: [f"ref-{i}@bench.example.org" for i in range(int(1000 * seconds))]}
    sent: dict[str, float] = {}
    with workdir() as tmp:
        sink = TSink(build_tsink(tmp), tmp)
        project = write_bench_project(tmp / "project", sink.port)
        try:
            with mailpulse_server(project, tmp / "data") as hostport:
                await identify_contacts(hostport, [e for es in plan.values() for e in es])
                await asyncio.sleep(2.0)  # let the fold absorb the contacts
                results, expected = await offer_rates(hostport, rates, plan, sent, sink, 0)
            with bare_relay(sink.port) as hostport:
                reference, _ = await offer_rates(
                    hostport, [1000], reference_plan, sent, sink, expected
                )
        finally:
            stamps = sink.stop()
    latencies(results, plan, sent, stamps)
    latencies(reference, reference_plan, sent, stamps)
    return results, reference[1000]


def sustained(info: dict[str, float]) -> bool:
    return info["failures"] == 0 and info["delivered"] == info["offered"] and info["p99"] < 250


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    measured = [uvloop.run(one_run(args.seconds)) for _ in range(args.runs)]
    runs = [m[0] for m in measured]
    references = [m[1] for m in measured]
    report: dict[str, object] = {"bench": "trigger_latency", "runs": args.runs}
    per_rate: dict[str, dict[str, float]] = {}
    for rate in [*FIXED_RATES, *PROBE_RATES]:
        infos = [r[rate] for r in runs if rate in r]
        if len(infos) < len(runs):
            continue
        per_rate[str(rate)] = {
            "p50_ms": round(median([i["p50"] for i in infos]), 2),
            "p99_ms": round(median([i["p99"] for i in infos]), 2),
            "p999_ms": round(median([i["p999"] for i in infos]), 2),
            "delivered": int(median([i["delivered"] for i in infos])),
            "offered": int(infos[0]["offered"]),
            "sustained_runs": sum(sustained(i) for i in infos),
        }
    report["rates"] = per_rate
    highest = [int(r) for r, v in per_rate.items() if v["sustained_runs"] * 2 > args.runs]
    report["highest_sustained_per_s"] = max(highest) if highest else 0
    reference = {
        "what": "bare HTTP-to-SMTP relay, same server stack, no storage/render/DKIM, 1000/s",
        "p50_ms": round(median([r["p50"] for r in references]), 2),
        "p99_ms": round(median([r["p99"] for r in references]), 2),
    }
    report["reference"] = reference
    at_1000 = per_rate.get("1000")
    if at_1000:
        report["p50_vs_budget"] = round(at_1000["p50_ms"] / BUDGET_P50_MS, 2)
        report["p99_vs_budget"] = round(at_1000["p99_ms"] / BUDGET_P99_MS, 2)
        report["p99_vs_reference"] = round(at_1000["p99_ms"] / reference["p99_ms"], 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
