"""Shared pieces of the benchmarks: a bench project, the C sink, a lean HTTP client, stats.

Benchmarks run the real server as its own process (`mailpulse serve`) so the load generator
and the sink do not share its interpreter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from mailpulse.bus import partition_of
from mailpulse.delivery import generate_rsa_key

ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCH = ROOT.parent / "shared" / "bench"
WRITE_KEY = "bench-key"
ADMIN_KEY = "bench-admin"

# About 2 KB of HTML once rendered: a typical transactional receipt.
RECEIPT = """\
---
subject: "Your order {{ event.properties.order_id }}, {{ contact.first_name }}"
---
<html><head><style>td { padding: 4px; } .total { font-weight: bold; }</style></head><body>
<p>Hi {{ contact.first_name }}, thanks for your order {{ event.properties.order_id }}.</p>
<table>{% for item in event.properties.products %}
<tr><td>{{ item.name }}</td><td>{{ item.quantity }}</td><td>${{ item.price }}</td></tr>
{% endfor %}<tr><td class="total">Total</td><td></td><td>${{ event.properties.total }}</td></tr>
</table>
<p>We will email you again when it ships. Questions? Just reply to this message.</p>
<p>{{ project.postal_address }}</p>
</body></html>
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_bench_project(root: Path, smtp_port: int, *, journeys: bool = True) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "journeys").mkdir()
    (root / "templates" / "receipt.html").write_text(RECEIPT)
    if journeys:
        (root / "journeys" / "receipt.yaml").write_text(
            textwrap.dedent(
                """\
                trigger:
                  event: Order Completed
                entry: always
                message_class: transactional
                steps:
                  - send: receipt
                """
            )
        )
    (root / "dkim.pem").write_bytes(generate_rsa_key(2048))
    (root / "mailpulse.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "Bench"
            postal_address = "1 Bench Road"
            write_keys = ["{WRITE_KEY}"]
            admin_key = "{ADMIN_KEY}"
            secret = "bench-only-secret-00000000000000000000000000000000"

            [sender]
            from = "Bench <shop@bench.example.com>"

            [dkim]
            domain = "bench.example.com"
            selector = "b"
            private_key = "dkim.pem"

            [smtp]
            host = "127.0.0.1"
            port = {smtp_port}
            starttls = false
            max_connections = 8
            max_messages_per_connection = 10000
            """
        )
    )
    return root


def order_completed(email: str, n: int) -> bytes:
    """A `track` body for the bench project's journey: one receipt to `email`."""
    return orjson.dumps(
        {
            "userId": email,
            "event": "Order Completed",
            "properties": {
                "order_id": f"A-{n}",
                "total": 59.9,
                "products": [
                    {"name": "Trail socks", "quantity": 2, "price": 12.5},
                    {"name": "Water bottle", "quantity": 1, "price": 34.9},
                ],
            },
        }
    )


def build_tsink(workdir: Path) -> Path:
    binary = workdir / "tsink"
    subprocess.run(["cc", "-O2", "-o", str(binary), str(SHARED_BENCH / "tsink.c")], check=True)
    return binary


class TSink:
    """The C sink: timestamps every recipient at the end of DATA."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.port = free_port()
        self.out = workdir / "tsink.out"
        # Its "ready" line would land before a benchmark's JSON line on stdout.
        self.proc = subprocess.Popen(
            [str(binary), str(self.port), str(self.out)], stdout=subprocess.DEVNULL
        )
        wait_port(self.port)

    def count(self) -> int:
        count_file = Path(f"{self.out}.count")
        count_file.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR1)
        for _ in range(200):
            if count_file.exists() and count_file.read_text().strip():
                return int(count_file.read_text().split()[0])
            time.sleep(0.005)
        raise RuntimeError("tsink did not report its count")

    def stop(self) -> dict[str, float]:
        """recipient -> epoch seconds of its 250."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        stamps: dict[str, float] = {}
        for line in self.out.read_text().splitlines():
            rcpt, t, _ = line.split("\t")
            stamps.setdefault(rcpt.strip("<>").lower(), float(t))
        return stamps


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


@dataclass(frozen=True)
class ScaleOut:
    """Where the nodes of one scale-out deployment meet: a PostgreSQL database and a JetStream
    stream."""

    store: str
    bus: str
    partitions: int
    bus_prefix: str

    def options(self) -> list[str]:
        return [
            "--store",
            self.store,
            "--bus",
            self.bus,
            "--partitions",
            str(self.partitions),
            "--bus-prefix",
            self.bus_prefix,
        ]


@contextlib.contextmanager
def _mailpulse(*args: str) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpulse.cli", *args], stdout=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def mailpulse_server(project: Path, data: Path | ScaleOut) -> Iterator[str]:
    """`mailpulse serve`: the whole pipeline on SQLite files in `data`, or a scale-out API
    node."""
    port = free_port()
    where = data.options() if isinstance(data, ScaleOut) else ["--data", str(data)]
    with _mailpulse("serve", "--project", str(project), *where, "--port", str(port)):
        wait_port(port)
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def mailpulse_worker(project: Path, scale_out: ScaleOut) -> Iterator[None]:
    with _mailpulse("worker", "--project", str(project), *scale_out.options()):
        yield


@contextlib.contextmanager
def bare_relay(smtp_port: int) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_relay", str(port), str(smtp_port)], cwd=ROOT
    )
    try:
        wait_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mailpulse-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class RawHttp:
    """Keep-alive HTTP/1.1 POSTs over raw asyncio streams: the load generator must cost the
    machine far less than the server it measures (httpx would take a core of its own)."""

    def __init__(self, hostport: str, connections: int) -> None:
        self.host, port = hostport.split(":")
        self.port = int(port)
        self.connections = connections
        self._pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self._auth = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()

    async def open(self) -> None:
        for _ in range(self.connections):
            self._pool.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def close(self) -> None:
        while not self._pool.empty():
            _, writer = self._pool.get_nowait()
            writer.close()

    async def post(self, path: str, body: bytes) -> int:
        reader, writer = await self._pool.get()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Basic {self._auth}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        try:
            for _attempt in (1, 2):
                writer.write(request)
                status_line = await reader.readline()
                if status_line:
                    break
                # The server closed an idle keep-alive connection: once more on a fresh one.
                writer.close()
                reader, writer = await asyncio.open_connection(self.host, self.port)
            else:
                raise ConnectionError(f"{path}: the server closed the connection twice")
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            return int(status_line.split()[1])
        finally:
            self._pool.put_nowait((reader, writer))


async def identify_contacts(hostport: str, emails: list[str]) -> None:
    """Create contacts fast through /v1/batch, outside the measured window."""
    async with httpx.AsyncClient(base_url=f"http://{hostport}", auth=(WRITE_KEY, "")) as c:
        for start in range(0, len(emails), 1000):
            batch = [
                {"type": "identify", "userId": e, "traits": {"email": e, "first_name": "Pat"}}
                for e in emails[start : start + 1000]
            ]
            r = await c.post("/v1/batch", content=orjson.dumps({"batch": batch}))
            r.raise_for_status()


async def wait_identified(
    hostport: str, emails: list[str], partitions: int = 1, within: float = 60
) -> None:
    """Until the fold has taken in every contact of `emails`, in the order identified.

    Each partition folds its events in log order, so the last contact of each partition
    standing in the admin API means all of that partition's are in.
    """
    last = {partition_of(e, partitions): e for e in emails}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        httpx.AsyncClient(base_url=f"http://{hostport}", headers=headers) as c,
        asyncio.timeout(within),
    ):
        for email in last.values():
            # The fold runs in another process: it can only be polled.
            while (await c.get(f"/admin/contacts/{email}")).status_code != 200:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def median(values: list[float]) -> float:
    return statistics.median(values)


def cpu_count() -> int:
    return os.cpu_count() or 1


# What a process is, by its command line, for CPU accounting: the first needle found names it.
PROCESS_KINDS = (
    ("mailpulse.runtime.courier_process", "courier"),
    ("mailpulse.cli serve", "serve"),
    ("mailpulse.cli worker", "worker"),
    ("bench.bare_relay", "bare relay"),
    ("nats-server", "nats"),
    ("tsink", "sink"),
)
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds of it and its reaped children, command line)."""
    found: dict[int, tuple[int, float, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # it ended meanwhile
        # The command name (field 2) may hold spaces and parentheses: count after its last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        found[int(entry.name)] = (int(fields[1]), ticks / _TICKS_PER_S, cmdline)
    return found


def cpu_seconds(roots: Mapping[int, str]) -> dict[str, float]:
    """CPU seconds (user + system) used so far per kind of process, in the process trees of
    `roots` (pid -> kind) only: a process counts for the nearest of itself and its ancestors
    that is a root or whose command line names a kind in PROCESS_KINDS. A child that ended
    counts for its parent once reaped. Subtract two calls to get a window."""
    procs = _processes()
    kinds: dict[int, str | None] = {}

    def kind_of(pid: int) -> str | None:
        if pid not in kinds:
            if pid in roots:
                kinds[pid] = roots[pid]
            elif pid not in procs:
                kinds[pid] = None
            else:
                ppid, _, cmdline = procs[pid]
                parent = kind_of(ppid)
                named = (kind for needle, kind in PROCESS_KINDS if needle in cmdline)
                kinds[pid] = None if parent is None else next(named, parent)
        return kinds[pid]

    totals: dict[str, float] = {}
    for pid, (_, seconds, _) in procs.items():
        kind = kind_of(pid)
        if kind is not None:
            totals[kind] = totals.get(kind, 0.0) + seconds
    return totals


def machine_cpu_seconds() -> float:
    """CPU seconds all cores have spent busy so far, whoever's process ran."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(f) for f in Path("/proc/stat").read_text().split(maxsplit=8)[1:8]
    )
    return (user + nice + system + irq + softirq) / _TICKS_PER_S
