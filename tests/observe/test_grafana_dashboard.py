"""docs/grafana-dashboard.json: a Grafana dashboard whose every query is PromQL that parses
(with Grafana's variables in), charts what the operator must see, and names only metrics that a
running pipeline's /metrics serves (with its courier processes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import embedded_server

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
# Grafana's variables, as Prometheus would get them.
_VARIABLES = {"$__rate_interval": "1m", "$instance": ".*"}
# Expressions around one other (`.expr`).
_WRAPPING = (
    promql_parser.AggregateExpr,
    promql_parser.ParenExpr,
    promql_parser.SubqueryExpr,
    promql_parser.UnaryExpr,
)
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count")}


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query, the variables' queries too."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            # label_values(metric, label): Grafana's, not PromQL; its metric is.
            inside = query["query"].removeprefix("label_values(").rsplit(",", 1)[0]
            yield variable["name"], inside


def _selected(expr: Any) -> Iterator[str]:
    """The metric names a parsed PromQL expression selects."""
    if isinstance(expr, promql_parser.VectorSelector):
        yield expr.name
    elif isinstance(expr, promql_parser.MatrixSelector):
        yield from _selected(expr.vector_selector)
    elif isinstance(expr, promql_parser.Call):
        for arg in expr.args:
            yield from _selected(arg)
    elif isinstance(expr, promql_parser.BinaryExpr):
        yield from _selected(expr.lhs)
        yield from _selected(expr.rhs)
    elif isinstance(expr, _WRAPPING):
        yield from _selected(expr.expr)


def _names(dashboard: dict[str, Any]) -> dict[str, str]:
    """Metric name → the panel that queries it; each query must parse as PromQL."""
    found: dict[str, str] = {}
    for title, expr in _queries(dashboard):
        for variable, value in _VARIABLES.items():
            expr = expr.replace(variable, value)
        parsed = promql_parser.parse(expr)  # raises on anything Prometheus would refuse
        for name in _selected(parsed):
            found.setdefault(name, title)
    return found


def test_the_dashboard_charts_what_the_operator_must_see() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 30
    queries = "\n".join(expr for _, expr in _queries(dashboard))
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(mailpulse_event_to_smtp" in (
            queries
        )
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for seen in (
        "events/s",
        "messages/s by status",
        "event → smtp",
        "per stage",
        "errors and deferrals",
        "delivery, bounce and complaint rates",
        "queue depths",
        "cpu",
        "memory",
    ):
        assert seen in titles, seen
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
    assert set(_names(dashboard)) >= {
        "mailpulse_process_cpu_seconds_total",
        "mailpulse_courier_resident_memory_bytes",
        "mailpulse_queue_depth",
    }


def _served(metrics_text: str) -> set[str]:
    """Every sample name /metrics serves or will serve, its labelled metrics that have no
    sample yet included (their HELP and TYPE are there)."""
    served = set()
    for family in text_string_to_metric_families(metrics_text):
        served.add(family.name)
        served.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
    return served


async def test_every_metric_it_queries_is_served_by_a_running_pipeline(tmp_path: Path) -> None:
    async with embedded_server(tmp_path) as server:
        async with asyncio.timeout(10):
            # The couriers' figures, once their processes are up.
            while "mailpulse_courier_cpu_seconds_total{" not in (  # noqa: ASYNC110
                text := (await server.client.get("/metrics")).text
            ):
                await asyncio.sleep(0.1)
    served = _served(text)
    queried = _names(_dashboard())
    assert {name: panel for name, panel in queried.items() if name not in served} == {}
