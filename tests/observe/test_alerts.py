"""The alert engine and its notifiers: a rule fires once after holding for `for`, resolves
once, and an unjudged rule (too few sends, no snapshots) moves nowhere; the complaint rule
judges the breaker's figures; webhooks are retried on 5xx and timeouts but not on 4xx, in
order, without the engine waiting; email goes through the project's relay (a real aiosmtpd)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import textwrap
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailpulse.observe import Metrics, notify
from mailpulse.observe.alerts import AlertEngine
from mailpulse.observe.alerts_expr import parse_expr
from mailpulse.observe.alerts_rules import AlertRule, AlertRules
from mailpulse.observe.notify import Dispatcher, Notice, Target, WebhookNotifier
from mailpulse.observe.sampler import MetricSampler
from mailpulse.project import load_project
from mailpulse.runtime.alerting import alert_engine
from tests.e2e.conftest import Sink, free_port, write_project

BOUNCE = parse_expr(
    'ratio(mailpulse_emails_total{status="bounced"}, '
    'mailpulse_emails_total{status=~"sent|bounced"})'
)


@dataclass
class Told:
    notices: list[tuple[Notice, tuple[str, ...]]] = field(default_factory=list)

    def __call__(self, notice: Notice, names: Sequence[str]) -> None:
        self.notices.append((notice, tuple(names)))

    @property
    def said(self) -> list[tuple[str, str]]:
        return [(n.alert, n.status) for n, _ in self.notices]


def engine_for(*rules: AlertRule) -> tuple[Metrics, MetricSampler, AlertEngine, Told]:
    metrics = Metrics()
    sampler = MetricSampler(metrics.registry)
    told = Told()
    return metrics, sampler, AlertEngine(AlertRules(rules), sampler, told, metrics, "Shop"), told


def bounce_rule(**changes: object) -> AlertRule:
    settings: dict = dict(
        name="bounce_rate",
        expr=BOUNCE,
        op=">=",
        threshold=0.05,
        window=10.0,
        min_count=10,
        notify=("log", "ops"),
        shown_as="percent",
    )
    return AlertRule(**{**settings, **changes})  # type: ignore[arg-type]


def step(
    metrics: Metrics, sampler: MetricSampler, engine: AlertEngine, at: float, **by: int
) -> None:
    for status, count in by.items():
        metrics.emails.labels(status).inc(count)
    sampler.sample_now(at)
    engine.evaluate(at)


def test_a_rule_fires_once_after_for_and_resolves_once() -> None:
    metrics, sampler, engine, told = engine_for(bounce_rule(for_=2.0))
    step(metrics, sampler, engine, 0.0)
    assert engine.states["bounce_rate"].value is None  # one snapshot: not judged
    step(metrics, sampler, engine, 1.0, sent=20)
    assert engine.states["bounce_rate"].value == 0.0
    step(metrics, sampler, engine, 2.0, sent=5, bounced=5)  # 5 of 30: 16.7 %
    assert engine.states["bounce_rate"].state == "pending" and told.notices == []
    step(metrics, sampler, engine, 3.0, sent=5, bounced=5)
    assert told.notices == []  # held 1 s of 2
    for at in (4.0, 5.0, 6.0):
        step(metrics, sampler, engine, at, sent=5, bounced=5)
    assert told.said == [("bounce_rate", "firing")]
    fired, names = told.notices[0]
    assert names == ("log", "ops")
    assert (fired.since, fired.at, fired.threshold, fired.window) == (2.0, 4.0, 0.05, 10.0)
    assert fired.value == pytest.approx(15 / 50)  # from the window's first snapshot, at 0
    assert fired.shown(fired.value) == "30%"
    assert metrics.alert_firing.labels("bounce_rate")._value.get() == 1
    # Only sends from here on: once the bounces leave the window it resolves, once.
    for at in range(7, 20):
        step(metrics, sampler, engine, float(at), sent=10)
    assert told.said == [("bounce_rate", "firing"), ("bounce_rate", "resolved")]
    resolved = told.notices[1][0]
    assert resolved.since == 4.0 and resolved.value < 0.05
    state = engine.states["bounce_rate"]
    assert (state.state, state.fired_at, state.resolved_value) == ("inactive", 4.0, resolved.value)
    assert metrics.alert_firing.labels("bounce_rate")._value.get() == 0


def test_a_blip_shorter_than_for_says_nothing() -> None:
    metrics, sampler, engine, told = engine_for(bounce_rule(for_=5.0, window=2.0))
    step(metrics, sampler, engine, 0.0, sent=20)
    step(metrics, sampler, engine, 1.0, sent=10, bounced=10)
    assert engine.states["bounce_rate"].state == "pending"
    for at in range(2, 8):
        step(metrics, sampler, engine, float(at), sent=20)
    assert engine.states["bounce_rate"].state == "inactive" and told.notices == []


def test_an_unjudged_rule_moves_nowhere() -> None:
    metrics, sampler, engine, told = engine_for(bounce_rule(window=3.0))
    step(metrics, sampler, engine, 0.0)
    step(metrics, sampler, engine, 1.0, bounced=9)  # 9 of 9, but fewer than min_count sends
    assert engine.states["bounce_rate"].value is None and told.notices == []
    step(metrics, sampler, engine, 2.0, bounced=5)
    assert told.said == [("bounce_rate", "firing")]
    for at in range(3, 8):  # no sends at all: silence proves nothing, it keeps firing
        step(metrics, sampler, engine, float(at))
    assert engine.states["bounce_rate"].state == "firing" and len(told.notices) == 1


def test_the_complaint_rule_judges_the_breakers_figures() -> None:
    rule = AlertRule(
        name="complaint_rate",
        expr=parse_expr("breaker()"),
        op=">=",
        threshold=0.001,
        window=86400.0,
        min_count=2000,
        shown_as="percent",
    )
    metrics, sampler, engine, told = engine_for(rule)

    def breaker_judged(sends: int, complaints: int, at: float) -> None:
        metrics.complaint_window.labels("sends").set(sends)
        metrics.complaint_rate.set(complaints / sends)
        sampler.sample_now(at)
        engine.evaluate(at)

    breaker_judged(1000, 5, 0.0)  # 0.5 %, but below min_sends: not judged
    assert told.notices == [] and engine.states["complaint_rate"].value is None
    breaker_judged(2000, 2, 1.0)  # exactly 0.1 %: reached, as the breaker says
    assert told.said == [("complaint_rate", "firing")]
    assert told.notices[0][0].shown(told.notices[0][0].value) == "0.1%"
    breaker_judged(3000, 2, 2.0)
    assert told.said[-1] == ("complaint_rate", "resolved")


def test_rate_value_and_quantile_rules() -> None:
    rules = [
        AlertRule("errors", parse_expr("rate(mailpulse_errors_total)"), ">", 0.5, 2.0),
        AlertRule("backlog", parse_expr("value(mailpulse_outbox_backlog_seconds)"), ">", 60, 0),
        AlertRule(
            "p99",
            parse_expr("quantile(0.99, mailpulse_event_to_smtp_seconds)"),
            ">",
            0.5,
            5.0,
            min_count=10,
        ),
    ]
    metrics, sampler, engine, told = engine_for(*rules)
    sampler.sample_now(0.0)
    metrics.errors.labels("fold").inc(3)
    metrics.errors.labels("render").inc(1)
    metrics.outbox_backlog.set(120)
    for _ in range(9):
        metrics.event_to_smtp.observe(2.0)
    sampler.sample_now(2.0)
    engine.evaluate(2.0)
    assert engine.states["errors"].value == 2.0  # 4 in 2 s
    assert engine.states["backlog"].value == 120
    assert engine.states["p99"].value is None  # 9 observations, fewer than min_count
    metrics.event_to_smtp.observe(2.0)
    sampler.sample_now(3.0)
    engine.evaluate(3.0)
    # Rank 9.9 of 10, all in the bucket (1 s, 2.5 s]: interpolated as Prometheus does.
    assert engine.states["p99"].value == pytest.approx(1 + 1.5 * 9.9 / 10)
    # No error since 2 s: the error rate over the last 2 s is 0 again.
    assert told.said == [
        ("errors", "firing"),
        ("backlog", "firing"),
        ("errors", "resolved"),
        ("p99", "firing"),
    ]


# Webhooks, against a real HTTP server.


@dataclass
class Hook:
    """Answers POST /hook with the next of `answers` (status, or "hang"), then 200."""

    answers: list[int | str] = field(default_factory=list)
    bodies: list[dict] = field(default_factory=list)
    port: int = field(default_factory=free_port)

    async def _take(self, request: Request) -> Response:
        body = json.loads(await request.body())
        answer = self.answers.pop(0) if self.answers else 200
        if answer == "hang":
            await asyncio.sleep(5)
        self.bodies.append({**body, "answered": answer})
        return JSONResponse({}, status_code=answer if isinstance(answer, int) else 200)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        app = Starlette(routes=[Route("/hook", self._take, methods=["POST"])])
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{self.port}/hook"
        finally:
            server.should_exit = True
            server.force_exit = True
            await task


def notice(alert: str, status: str = "firing") -> Notice:
    return Notice(
        alert=alert,
        status=status,  # type: ignore[arg-type]
        severity="critical",
        summary="Mail servers refuse many of the messages sent",
        expr=str(BOUNCE),
        op=">=",
        value=0.25,
        threshold=0.05,
        window=900.0,
        for_=0.0,
        at=1_700_000_000.0,
        since=1_699_999_990.0,
        shown_as="percent",
        project="Shop",
    )


async def until(done: object, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not done():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "BACKOFF", (0.01, 0.05))


async def test_a_webhook_is_retried_on_5xx_and_timeouts_and_keeps_the_order() -> None:
    hook, metrics = Hook(answers=[503, "hang"]), Metrics()
    async with hook.serving() as url:
        dispatcher = Dispatcher({"ops": Target(WebhookNotifier(url, 0.5), 3)}, metrics)
        dispatcher.notify(notice("bounce_rate"), ["ops"])  # returns at once
        dispatcher.notify(notice("bounce_rate", "resolved"), ["ops"])
        await until(lambda: len([b for b in hook.bodies if b["answered"] == 200]) == 2)
        await dispatcher.close()
    delivered = [(b["alert"], b["status"]) for b in hook.bodies if b["answered"] == 200]
    assert delivered == [("bounce_rate", "firing"), ("bounce_rate", "resolved")]
    first = next(b for b in hook.bodies if b["answered"] == 200)
    assert (first["value"], first["threshold"], first["window"]) == (0.25, 0.05, 900.0)
    assert (first["value_shown"], first["threshold_shown"], first["for"]) == ("25%", "5%", 0.0)
    assert metrics.alert_notifications.labels("ops", "delivered")._value.get() == 2


async def test_a_webhook_refusing_with_4xx_is_not_retried_and_a_dead_one_gives_up() -> None:
    hook, metrics = Hook(answers=[404]), Metrics()
    async with hook.serving() as url:
        dead = f"http://127.0.0.1:{free_port()}/hook"
        dispatcher = Dispatcher(
            {
                "ops": Target(WebhookNotifier(url, 1.0), 3),
                "gone": Target(WebhookNotifier(dead, 1.0), 2),
            },
            metrics,
        )
        dispatcher.notify(notice("bounce_rate"), ["log", "ops", "gone"])
        await until(
            lambda: (
                metrics.alert_notifications.labels("gone", "failed")._value.get() == 1
                and metrics.alert_notifications.labels("ops", "refused")._value.get() == 1
            )
        )
        await dispatcher.close()
    assert [b["answered"] for b in hook.bodies] == [404]  # once: no retry
    assert metrics.alert_notifications.labels("log", "delivered")._value.get() == 1


async def test_a_slow_webhook_holds_up_neither_the_engine_nor_other_targets() -> None:
    slow, quick, metrics = Hook(answers=["hang"]), Hook(), Metrics()
    async with slow.serving() as slow_url, quick.serving() as quick_url:
        dispatcher = Dispatcher(
            {
                "slow": Target(WebhookNotifier(slow_url, 3.0), 0),
                "quick": Target(WebhookNotifier(quick_url, 3.0), 0),
            },
            metrics,
        )
        dispatcher.notify(notice("bounce_rate"), ["slow", "quick"])
        await until(lambda: len(quick.bodies) == 1)
        assert slow.bodies == []  # still hanging
        await dispatcher.close(within=0.1)


async def test_email_goes_through_the_projects_relay(tmp_path: Path) -> None:
    sink = Sink()
    await sink.start()
    try:
        project_dir = write_project(tmp_path / "p", sink.port)
        (project_dir / "alerts.yaml").write_text(
            textwrap.dedent(
                """\
                notifiers:
                  oncall:
                    email: [oncall@ops.test, bounce.night@ops.test]
                    retries: 0
                """
            )
        )
        metrics = Metrics()
        engine, dispatcher = alert_engine(
            load_project(project_dir), MetricSampler(metrics.registry), metrics, lambda: 0.0
        )
        assert len(engine.states) == 5
        dispatcher.notify(notice("bounce_rate"), ["oncall"])
        await sink.wait_for("oncall@ops.test")
        await until(lambda: metrics.alert_notifications.labels("oncall", "refused")._value.get())
        await dispatcher.close()
    finally:
        await sink.stop()
    (mail,) = sink.to("oncall@ops.test")
    message = mail.message
    assert mail.mail_from == "bounces@shop.test"
    assert message["From"] == "Testshop <hello@shop.test>"
    assert message["Subject"].startswith("[mailpulse Shop] FIRING bounce_rate (critical)")
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert "value:      25%" in body and "threshold:  >= 5%" in body and "window:     15m" in body
    # The second address answers 550: refused for good, not retried.
    assert sink.refused == [("bounce.night@ops.test", "550")]
