"""The backfill benchmark, at a tiny size: it checks its own results (the columns it makes
against those built from events, memberships against the full recomputation) and prints one
JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_checks_itself_and_prints_one_json_line() -> None:
    size = ["--contacts", "300", "--events", "5000", "--build-sample", "5000", "--check", "300"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.segment_backfill", "--runs", "2", *size],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (line,) = result.stdout.splitlines()
    report = json.loads(line)
    assert (report["contacts"], report["events"], report["history_events"]) == (300, 5000, 5000)
    assert len(report["all_runs_s"]) == 2
    assert report["segments"] == len(report["members"]) >= 8
    assert {"inactive", "vip", "shoe_browsers"} <= set(report["members"])
    assert report["checked_contacts"] == 300
    assert report["build_from_events"]["sample_events"] == 5000
