"""Whole-pipeline fixtures: a real project folder, a real SMTP peer, a real HTTP server.

The SMTP peer is aiosmtpd on the test's own loop; it keeps every message and answers
recipients by their local part, N times and then `250`: `defer-N.*` with `451 4.3.0`,
`throttle-N.*` with `421 4.7.0`, `full-N.*` with `452 4.2.2`, `drop-N.*` by closing the
connection at the end of DATA; always: `bounce.*` with `550 5.1.1`, `big.*` with `552 5.3.4`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import dkim
import httpx
import pytest
import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailpulse.api import create_app
from mailpulse.delivery import dns_txt_record, generate_rsa_key
from mailpulse.project import Project, load_project
from mailpulse.runtime.pipeline import Pipeline
from tests.dns_server import dns_server as dns_server

WRITE_KEY = "test-write-key"
ADMIN_KEY = "test-admin-key"
_DEFER = re.compile(r"^(defer|throttle|full|drop)-(\d+)\.")  # answered N times, then 250
_TEMPORARY = {
    "defer": "451 4.3.0 try again later",
    "throttle": "421 4.7.0 too many messages, slow down",  # this sender goes too fast
    "full": "452 4.2.2 mailbox full",
}

WELCOME = """\
---
subject: "Welcome, {{ contact.first_name | default('friend') }} — Grüße from {{ project.name }}"
preheader: "Your account is ready"
---
<mjml><mj-body><mj-section><mj-column>
  <mj-text>Hello {{ contact.first_name }}, your plan is {{ contact.plan }}.</mj-text>
  <mj-button href="{{ project.url }}/start?u={{ contact.id }}">Get started</mj-button>
  <mj-text>{{ project.postal_address }} · <a href="{{ unsubscribe_url }}">Unsubscribe</a></mj-text>
</mj-column></mj-section></mj-body></mjml>
"""

REMINDER = """\
---
subject: "You left {{ event.properties.name }} in your cart"
---
<html><head><style>p { color: #333; }</style></head><body>
<p>Hi {{ contact.first_name }}, {{ event.properties.name }} is waiting.</p>
</body></html>
"""

JOURNEYS = {
    "welcome": """\
        trigger:
          event: Signed Up
        steps:
          - send: welcome
        """,
    "cart": """\
        trigger:
          event: Product Added
        entry: always
        exit_on:
          - event: Order Completed
        steps:
          - wait: 2s
          - send: reminder
        """,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_project(
    root: Path,
    smtp_port: int,
    *,
    journeys: dict[str, str] | None = None,
    segments: dict[str, str] | None = None,
    retry: str = '["1s"]',
) -> Path:
    (root / "templates").mkdir(parents=True)
    (root / "journeys").mkdir()
    (root / "dkim").mkdir()
    (root / "templates" / "welcome.mjml").write_text(WELCOME, encoding="utf-8")
    (root / "templates" / "reminder.html").write_text(REMINDER, encoding="utf-8")
    for name, text in (journeys or JOURNEYS).items():
        (root / "journeys" / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    if segments:
        (root / "segments").mkdir()
        for name, text in segments.items():
            path = root / "segments" / f"{name}.yaml"
            path.write_text(textwrap.dedent(text), encoding="utf-8")
    (root / "dkim" / "key.pem").write_bytes(_key())
    (root / "mailpulse.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "Testshop"
            url = "https://shop.test"
            postal_address = "1 Test Street, Testville"
            write_keys = ["{WRITE_KEY}"]
            admin_key = "{ADMIN_KEY}"

            [sender]
            from = "Testshop <hello@shop.test>"
            return_path = "bounces@shop.test"
            feedback_id = "t:welcome:mp:testshop"

            [dkim]
            domain = "shop.test"
            selector = "mp"
            private_key = "dkim/key.pem"

            [topics.offers]
            name = "Offers"
            description = "Sales and discounts"

            [topics.newsletter]
            name = "Newsletter"
            description = "The weekly letter"
            double_opt_in = true

            [smtp]
            host = "127.0.0.1"
            port = {smtp_port}
            starttls = false
            max_connections = 8

            # Tests add delivery settings by appending: this table stays the last.
            [delivery]
            retry_schedule = {retry}
            max_age = "1h"
            couriers = 1
            """
        ),
        encoding="utf-8",
    )
    return root


_KEY: list[bytes] = []


def _key() -> bytes:
    # One RSA-2048 key per test session: generating one costs ~100 ms.
    if not _KEY:
        _KEY.append(generate_rsa_key(2048))
    return _KEY[0]


def dkim_dns(project_dir: Path) -> Callable[..., bytes]:
    record = dns_txt_record((project_dir / "dkim" / "key.pem").read_bytes()).encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return record if name == b"mp._domainkey.shop.test." else b""

    return lookup


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes
    at: float = field(default_factory=time.monotonic)  # when its DATA was accepted

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Sink:
    """aiosmtpd on the test loop, scripted by recipient."""

    port: int = 0
    host: str = "127.0.0.1"  # another loopback address (127.0.0.2) is another mail host
    delay: float = 0.0  # seconds before each end-of-DATA reply: a slow receiver
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    # Messages being taken at once per recipient domain, now and at most (with a `delay`,
    # how many transactions a sender keeps open to the domain at once).
    busy: Counter[str] = field(default_factory=Counter)
    most_busy: Counter[str] = field(default_factory=Counter)
    _deferred: dict[str, int] = field(default_factory=dict)
    _server: asyncio.AbstractServer | None = None
    _arrival: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rcpt = envelope.rcpt_tos[0]
        if self.delay:
            domain = rcpt.rpartition("@")[2].lower()
            self.busy[domain] += 1
            self.most_busy[domain] = max(self.most_busy[domain], self.busy[domain])
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.busy[domain] -= 1
        local = rcpt.partition("@")[0]
        m = _DEFER.match(local)
        if m and self._deferred.get(rcpt, 0) < int(m.group(2)):
            self._deferred[rcpt] = self._deferred.get(rcpt, 0) + 1
            if m.group(1) == "drop":
                self.refused.append((rcpt, "drop"))
                assert server.transport is not None
                server.transport.abort()  # gone without a word, as a crashed peer is
                return "421 4.4.2 connection dropped"
            reply = _TEMPORARY[m.group(1)]
            self.refused.append((rcpt, reply[:3]))
            return reply
        for prefix, reply in (("bounce.", "550 5.1.1 no such user"), ("big.", "552 5.3.4 too big")):
            if local.startswith(prefix):
                self.refused.append((rcpt, reply[:3]))
                return reply
        self.received.append(Received(envelope.mail_from, rcpt, envelope.original_content))
        self._arrival.set()
        return "250 2.0.0 OK"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.test", enable_SMTPUTF8=True), self.host, self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def to(self, rcpt: str) -> list[Received]:
        return [r for r in self.received if r.rcpt == rcpt]

    async def wait_until(self, done: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not done():
                self._arrival.clear()
                await self._arrival.wait()

    async def wait_for(self, rcpt: str, count: int = 1, within: float = 10.0) -> list[Received]:
        await self.wait_until(lambda: len(self.to(rcpt)) >= count, within)
        return self.to(rcpt)

    def distinct_and_doubles(self) -> tuple[int, int]:
        """Distinct messages received, and second arrivals of one Message-ID (re-sends after
        a crash carry the first attempt's id, so that receivers can drop them)."""
        per_message = Counter(r.message["Message-ID"] for r in self.received)
        return len(per_message), sum(n - 1 for n in per_message.values())


def _session_key_dns(name: bytes, timeout: int = 5) -> bytes:
    """The DKIM record of every test project's key (one per session: see `_key`)."""
    return dns_txt_record(_key()).encode() if name == b"mp._domainkey.shop.test." else b""


def check_marketing_signed(received: list[Received]) -> None:
    """What every e2e test holds (issue 6): a marketing message (a campaign's always is; any
    with List-Unsubscribe says it is) carries both List-Unsubscribe fields under a DKIM
    signature that dkimpy verifies, with both named in its h= tag."""
    for r in received:
        message = r.message
        key = str(message.get("X-Mailpulse-Key", ""))
        if not key.startswith("campaign:") and "List-Unsubscribe" not in message:
            continue
        where = f"message {key or message['Message-ID']} to {r.rcpt}"
        assert "List-Unsubscribe" in message, f"{where}: no List-Unsubscribe"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click", where
        signature = re.sub(r"\s+", "", str(message.get("DKIM-Signature", "")))
        if "d=shop.test;" not in signature:
            continue  # signed with a key of the test's own, which it checks itself
        signed = re.search(r"h=([^;]*)", signature)
        names = {n.lower() for n in signed.group(1).split(":")} if signed else set()
        assert {"list-unsubscribe", "list-unsubscribe-post"} <= names, f"{where}: h={names}"
        assert dkim.verify(r.data, dnsfunc=_session_key_dns), f"{where}: DKIM does not verify"


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()
    check_marketing_signed(s.received)


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port)


@dataclass
class Deployment:
    """Where a test's mailpulse keeps its data, kept across restarts within the test:
    embedded (SQLite files in a folder) or scale-out (a PostgreSQL database and a JetStream
    stream), so that every e2e test runs against both."""

    mode: str
    data_dir: Path
    store: str = ""
    bus: str = ""
    bus_prefix: str = ""
    partitions: int = 4

    def parts(self) -> tuple[Any, Any, Any]:
        from mailpulse.runtime.scale_out import scale_out_parts

        return scale_out_parts(self.store, self.bus, self.partitions, bus_prefix=self.bus_prefix)


@pytest.fixture(params=["embedded", "scale-out"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    if request.param == "embedded":
        return Deployment("embedded", tmp_path / "data")
    return Deployment(
        "scale-out",
        tmp_path / "data",
        store=request.getfixturevalue("postgres_dsn"),
        bus=request.getfixturevalue("nats_server"),
        bus_prefix=f"t{uuid.uuid4().hex[:12]}",
    )


@dataclass
class Server:
    base: str
    pipeline: Pipeline
    client: httpx.AsyncClient
    admin: httpx.AsyncClient

    async def send(self, call: str, body: dict) -> httpx.Response:
        return await self.client.post(f"/v1/{call}", json=body)

    async def events(self, contact: str) -> list[dict]:
        r = await self.admin.get(f"/admin/contacts/{contact}/events")
        r.raise_for_status()
        return r.json()["events"]

    async def wait_event(self, contact: str, name: str, within: float = 10.0) -> dict:
        async with asyncio.timeout(within):
            while True:
                with contextlib.suppress(httpx.HTTPStatusError):
                    for ev in await self.events(contact):
                        if ev["event"] == name:
                            return ev
                await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _worker(project: Project, deployment: Deployment) -> AsyncIterator[None]:
    """A scale-out worker on the test's loop, owning every partition."""
    from mailpulse.runtime.leases import PartitionLeases
    from mailpulse.runtime.worker import Worker

    log, state, bus = deployment.parts()
    worker = Worker(
        project,
        log=log,
        state=state,
        bus=bus,
        leases=PartitionLeases(deployment.store, deployment.partitions),
    )
    await worker.start()
    await worker.balance()
    running = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.stop()


async def mailpulse_cli(server: Server, *args: str) -> tuple[int, str, str]:
    """`mailpulse ARGS` against `server`, in a process of its own: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailpulse.cli",
        *args,
        "--url",
        server.base,
        "--admin-key",
        ADMIN_KEY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"{args} did not finish: {out.decode()}{err.decode()}") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def embedded_server(tmp_path: Path) -> AsyncIterator[Server]:
    """The default project served embedded, with a sink of its own: for the tests of an API
    or a command, which one deployment covers."""
    sink = Sink()
    await sink.start()
    project = write_project(tmp_path / "project", sink.port)
    try:
        async with running_server(project, Deployment("embedded", tmp_path / "data")) as s:
            yield s
    finally:
        await sink.stop()


@contextlib.asynccontextmanager
async def running_server(
    project_dir: Path,
    deployment: Deployment,
    clock: Callable[[], float] = time.time,
    **app_options: Any,
) -> AsyncIterator[Server]:
    """`clock`: the embedded pipeline's (a test may move it on); `app_options`: create_app's
    (an SES test's certificate fetcher)."""
    project = load_project(project_dir)
    async with contextlib.AsyncExitStack() as stack:
        if deployment.mode == "embedded":
            pipeline = Pipeline.embedded(project, deployment.data_dir, clock=clock)
        else:
            log, state, bus = deployment.parts()
            pipeline = Pipeline(project, log=log, state=state, bus=bus, run_partitions=False)
            await stack.enter_async_context(_worker(project, deployment))
        port = free_port()
        config = uvicorn.Config(
            create_app(pipeline, **app_options),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    await task
                await asyncio.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        async with (
            httpx.AsyncClient(base_url=base, auth=(WRITE_KEY, "")) as client,
            httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as admin,
        ):
            try:
                yield Server(base, pipeline, client, admin)
            finally:
                server.should_exit = True
                await task


@pytest.fixture
async def server(project_dir: Path, deployment: Deployment) -> AsyncIterator[Server]:
    async with running_server(project_dir, deployment) as s:
        yield s
