"""The alert rules and where each stands, for the dashboard and for people (read scope).

GET /admin/alerts    every rule (built-in and alerts.yaml): its expression, threshold,
                     window, state (inactive, pending, firing), the figure as last judged
                     (null: not judged, e.g. too few sends in the window), and when it
                     last fired and resolved, with the figures it did so on
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.observe.alerts import AlertEngine, AlertState
from mailpulse.observe.notify import show


class AlertOut(BaseModel):
    name: str
    summary: str
    severity: str
    expr: str
    op: str
    threshold: float
    threshold_shown: str  # as written: "5%", "500ms"
    window: float  # seconds
    for_seconds: float
    min_count: float
    notify: list[str]
    state: Literal["inactive", "pending", "firing"]
    value: float | None  # None: not judged
    value_shown: str | None
    judged_at: float | None
    since: float | None  # pending or firing since
    fired_at: float | None
    fired_value: float | None
    resolved_at: float | None
    resolved_value: float | None


class AlertsOut(BaseModel):
    at: float
    firing: int
    alerts: list[AlertOut]


def _out(state: AlertState) -> AlertOut:
    rule = state.rule
    return AlertOut(
        name=rule.name,
        summary=rule.summary,
        severity=rule.severity,
        expr=str(rule.expr),
        op=rule.op,
        threshold=rule.threshold,
        threshold_shown=show(rule.threshold, rule.shown_as),
        window=rule.window,
        for_seconds=rule.for_,
        min_count=rule.min_count,
        notify=list(rule.notify),
        state=state.state,
        value=state.value,
        value_shown=None if state.value is None else show(state.value, rule.shown_as),
        judged_at=state.judged_at,
        since=state.since,
        fired_at=state.fired_at,
        fired_value=state.fired_value,
        resolved_at=state.resolved_at,
        resolved_value=state.resolved_value,
    )


def alerts_router(engine: AlertEngine) -> APIRouter:
    router = APIRouter(
        prefix="/admin/alerts", tags=["admin"], dependencies=[Depends(require_admin)]
    )

    @router.get("", response_model=AlertsOut, responses=ERRORS)
    async def alerts() -> AlertsOut:
        """Every alert rule and where it stands."""
        states = [_out(s) for s in engine.states.values()]
        return AlertsOut(
            at=time.time(), firing=sum(s.state == "firing" for s in states), alerts=states
        )

    return router
