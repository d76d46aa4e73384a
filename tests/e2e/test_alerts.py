"""Issue 7's alert acceptance: a sink that starts answering 550 for everything makes the
bounce-rate alert fire to a webhook receiver (a real HTTP server) within its window, once,
with the figures that crossed; when the sink recovers, it resolves, once. The project's
alerts.yaml gives the rule a short window so that this takes seconds. GET /admin/alerts shows
where each rule stands."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.e2e.conftest import Deployment, Server, Sink, free_port, running_server, write_project

WINDOW = 4.0  # seconds: the bounce-rate rule's window in this test's project


@dataclass
class RefusingSink(Sink):
    """The test sink, or, while `refusing`, one that answers 550 to every message."""

    refusing: bool = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refusing:
            self.refused.append((envelope.rcpt_tos[0], "550"))
            return "550 5.7.1 service refused"
        return await super().handle_DATA(server, session, envelope)


@dataclass
class WebhookReceiver:
    """An HTTP server that keeps every JSON body POSTed to /alerts."""

    bodies: list[dict] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _arrival: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    async def _take(self, request: Request) -> JSONResponse:
        self.bodies.append(await request.json())
        self._arrival.set()
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        app = Starlette(routes=[Route("/alerts", self._take, methods=["POST"])])
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            assert not task.done(), "the webhook receiver did not start"
            await asyncio.sleep(0.01)
        try:
            yield
        finally:
            server.should_exit = True
            await task

    async def wait_for(self, status: str, within: float) -> dict:
        async with asyncio.timeout(within):
            while True:
                for body in self.bodies:
                    if body["alert"] == "bounce_rate" and body["status"] == status:
                        return body
                self._arrival.clear()
                await self._arrival.wait()


async def keep_signing_up(server: Server, every: float = 0.1) -> None:
    """A new contact signs up every `every` seconds: a welcome message each."""
    for n in itertools.count():
        user = f"u-{n}"
        email = f"user{n}@example.com"
        await server.send("identify", {"userId": user, "traits": {"email": email}})
        await server.send("track", {"userId": user, "event": "Signed Up"})
        await asyncio.sleep(every)


async def read_scope_sees_alerts_and_no_key_does_not(server: Server) -> None:
    made = await server.admin.post("/admin/keys", json={"scope": "read", "name": "dashboard"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    async with httpx.AsyncClient(base_url=server.base) as anyone:
        seen = await anyone.get("/admin/alerts", headers={"Authorization": f"Bearer {key}"})
        assert seen.status_code == 200 and seen.json()["firing"] == 0
        refused = await anyone.get("/admin/alerts")
        assert refused.status_code == 401 and refused.json()["error"]


def alerting_project(root: Path, sink: Sink, hook: WebhookReceiver) -> Path:
    project = write_project(root, sink.port)
    (project / "alerts.yaml").write_text(
        textwrap.dedent(
            f"""\
            notifiers:
              hook:
                webhook: {hook.url}
                timeout: 2s
                retries: 2
            rules:
              bounce_rate:
                window: {WINDOW:g}s
                min_count: 3
                notify: [log, hook]
            """
        ),
        encoding="utf-8",
    )
    return project


async def test_bounce_rate_alert_fires_to_a_webhook_and_resolves_after_the_sink_recovers(
    tmp_path: Path,
) -> None:
    sink, hook = RefusingSink(), WebhookReceiver()
    await sink.start()
    project = alerting_project(tmp_path / "project", sink, hook)
    try:
        async with (
            hook.serving(),
            running_server(project, Deployment("embedded", tmp_path / "data")) as server,
        ):
            traffic = asyncio.create_task(keep_signing_up(server))
            try:
                await sink.wait_until(lambda: len(sink.received) >= 5)
                standing = (await server.admin.get("/admin/alerts")).json()
                bounce = next(a for a in standing["alerts"] if a["name"] == "bounce_rate")
                assert bounce["state"] == "inactive" and bounce["window"] == WINDOW
                assert bounce["threshold_shown"] == "5%" and bounce["notify"] == ["log", "hook"]
                assert {a["name"] for a in standing["alerts"]} >= {"complaint_rate", "backlog_age"}
                assert hook.bodies == []
                await read_scope_sees_alerts_and_no_key_does_not(server)

                sink.refusing = True
                fired = await hook.wait_for("firing", within=3 * WINDOW)
                assert fired["severity"] == "critical" and fired["op"] == ">="
                assert fired["threshold"] == 0.05 and fired["threshold_shown"] == "5%"
                assert fired["window"] == WINDOW
                assert fired["value"] >= 0.05
                assert fired["expr"].startswith("ratio(mailpulse_emails_total")
                assert fired["project"] == "Testshop"
                standing = (await server.admin.get("/admin/alerts")).json()
                bounce = next(a for a in standing["alerts"] if a["name"] == "bounce_rate")
                assert bounce["state"] == "firing" and standing["firing"] >= 1
                assert bounce["fired_value"] == fired["value"]

                sink.refusing = False
                resolved = await hook.wait_for("resolved", within=4 * WINDOW)
                assert resolved["value"] < 0.05
                assert resolved["since"] == fired["at"]  # when it fired
                metrics = (await server.client.get("/metrics")).text
                assert 'mailpulse_alert_firing{alert="bounce_rate"} 0.0' in metrics
                # The server's and its courier process's CPU and memory, sampled for the dashboard.
                assert 'mailpulse_courier_resident_memory_bytes{courier="0"}' in metrics
                cpu = server.pipeline.sampler.series("mailpulse_courier_cpu_seconds_total")
                assert cpu and cpu[-1][1] > 0
                assert server.pipeline.sampler.series("mailpulse_process_resident_memory_bytes")
                assert (
                    'mailpulse_alert_notifications_total{notifier="hook",result="delivered"}'
                    in (metrics)
                )
            finally:
                traffic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await traffic
            await asyncio.sleep(0.5)
        # Once each: a rule that fired and resolved says so once.
        said = [(b["alert"], b["status"]) for b in hook.bodies]
        assert said == [("bounce_rate", "firing"), ("bounce_rate", "resolved")]
    finally:
        await sink.stop()
