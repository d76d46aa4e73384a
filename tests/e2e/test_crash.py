"""kill -9 under load: every acknowledged event still produces its email.

The server runs as its own process (`mailpulse serve`) so it can really be killed. Doubles
are allowed only for SMTP transactions in flight at the kill; the test counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import WRITE_KEY, Sink, free_port

USERS = 400


def start_server(project: Path, data: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailpulse.cli",
            "serve",
            "--project",
            str(project),
            "--data",
            str(data),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def assert_no_process_for(project_dir: Path, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while True:
        left = subprocess.run(
            ["pgrep", "-f", str(project_dir)], capture_output=True, text=True
        ).stdout.split()
        if not left:
            return
        assert time.monotonic() < deadline, f"processes left behind: {left}"
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def assert_doubles_are_resends(sink: Sink) -> int:
    """Doubles only for SMTP transactions in flight at the kill, at most one per connection
    (`max_connections = 8` in the test project), each with the first attempt's Message-ID so
    that receivers can drop it. Answers how many there were."""
    _, doubles = sink.distinct_and_doubles()
    assert doubles <= 8
    ids_per_rcpt: dict[str, set[str]] = {}
    for r in sink.received:
        ids_per_rcpt.setdefault(r.rcpt, set()).add(r.message["Message-ID"])
    assert all(len(ids) == 1 for ids in ids_per_rcpt.values())
    return doubles


async def wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as client, asyncio.timeout(30):
        while True:
            assert proc.poll() is None, "server exited"
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)


async def test_kill_9_under_load_loses_nothing(project_dir: Path, tmp_path: Path, sink: Sink):
    # A slow receiver, so that acknowledged events are still waiting for SMTP at the kill.
    sink.delay = 0.02
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    proc = start_server(project_dir, data, port)
    acknowledged: set[str] = set()
    try:
        await wait_healthy(base, proc)

        async def user_signs_up(n: int, client: httpx.AsyncClient) -> None:
            user = f"crash-{n}"
            with contextlib.suppress(httpx.TransportError):
                r = await client.post(
                    "/v1/identify",
                    json={"userId": user, "traits": {"email": f"{user}@example.com"}},
                )
                if r.status_code != 200:
                    return
                r = await client.post("/v1/track", json={"userId": user, "event": "Signed Up"})
                if r.status_code == 200:
                    acknowledged.add(f"{user}@example.com")

        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(
            base_url=base, auth=(WRITE_KEY, ""), limits=limits, timeout=10
        ) as client:
            load = asyncio.gather(*(user_signs_up(n, client) for n in range(USERS)))
            await sink.wait_until(lambda: len(sink.received) >= 150, within=60)
            os.kill(proc.pid, signal.SIGKILL)
            sent_before_kill = len(sink.received)
            proc.wait()
            await load
        assert 0 < len(acknowledged) < USERS, "the kill must land mid-run"
        assert len(acknowledged) > sent_before_kill, "acknowledged mail must still be pending"

        proc = start_server(project_dir, data, port)
        await wait_healthy(base, proc)
        await sink.wait_until(lambda: acknowledged <= {r.rcpt for r in sink.received}, within=60)
        await asyncio.sleep(1.0)  # let any late double show itself
    finally:
        stop_server(proc)

    # Nothing outlives the test: the courier of a killed server leaves with it.
    await asyncio.to_thread(assert_no_process_for, project_dir)

    missing = acknowledged - {r.rcpt for r in sink.received}
    assert not missing
    doubles = assert_doubles_are_resends(sink)
    print(
        f"\ncrash test: {len(acknowledged)} acknowledged sign-ups, {sent_before_kill} emails "
        f"before kill -9, {doubles} doubles"
    )
