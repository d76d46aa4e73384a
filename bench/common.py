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
from collections.abc import Iterator
from pathlib import Path

import httpx

from mailpulse.delivery import generate_rsa_key

ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCH = ROOT.parent / "shared" / "bench"
WRITE_KEY = "bench-key"

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
            admin_key = "bench-admin"

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


def build_tsink(workdir: Path) -> Path:
    binary = workdir / "tsink"
    subprocess.run(["cc", "-O2", "-o", str(binary), str(SHARED_BENCH / "tsink.c")], check=True)
    return binary


class TSink:
    """The C sink: timestamps every recipient at the end of DATA."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.port = free_port()
        self.out = workdir / "tsink.out"
        self.proc = subprocess.Popen([str(binary), str(self.port), str(self.out)])
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


@contextlib.contextmanager
def mailpulse_server(project: Path, data: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
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
    )
    try:
        wait_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    import orjson

    async with httpx.AsyncClient(base_url=f"http://{hostport}", auth=(WRITE_KEY, "")) as c:
        for start in range(0, len(emails), 1000):
            batch = [
                {"type": "identify", "userId": e, "traits": {"email": e, "first_name": "Pat"}}
                for e in emails[start : start + 1000]
            ]
            r = await c.post("/v1/batch", content=orjson.dumps({"batch": batch}))
            r.raise_for_status()


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
