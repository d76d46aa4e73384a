"""The protective breaker over the admin API (see mailpulse.runtime.breaker).

    GET  /admin/breaker          where it stands: tripped or not and why, the figures judged
                                 now, the thresholds, the alert, the last resume and who made it
    POST /admin/breaker/resume   {"force": false} (or no body): marketing goes again, and what
                                 the breaker held goes out

A resume is a 409 with the reason when the breaker is not tripped, and, without `force`, while
the rate it judges is still at the pause threshold (`where`: /force); nothing changes then.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from mailpulse.access import Principal
from mailpulse.api.admin_gate import note_audit
from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.policy.breaker import Figures, format_percent, judge
from mailpulse.runtime.breaker import Breaker, ResumeRefused, holding
from mailpulse.store.interface import BreakerRecord


class FiguresOut(BaseModel):
    sends: int  # marketing messages sent
    complaints: int  # complaints about marketing
    rate: float | None  # complaints / sends; None without sends
    rate_percent: str | None  # the same as people write it: "0.12%"
    since: float  # counted from then (the window's start, or the last resume if later)
    at: float
    # unjudged: fewer sends than min_sends; clear; alert: at the alert threshold; pause: at
    # the pause threshold
    judged: Literal["unjudged", "clear", "alert", "pause"]


class ThresholdsOut(BaseModel):
    alert: str  # "0.1%"
    pause: str  # "0.3%"
    window: float  # seconds
    min_sends: int


class TrippedOnOut(BaseModel):
    sends: int
    complaints: int
    since: float


class BreakerOut(BaseModel):
    state: Literal["tripped", "alert", "clear"]
    tripped: bool  # marketing is held
    tripped_at: float | None
    reason: str | None  # why it tripped, with the figures it tripped on
    tripped_on: TrippedOnOut | None
    alert_since: float | None  # when the alert was raised; None: it is not
    figures: FiguresOut  # what is judged now
    thresholds: ThresholdsOut
    resumed_at: float | None  # the last resume, and who made it
    resumed_by: str | None
    held_reason: str | None  # what campaigns and the senders say while it is tripped


class ResumedOut(BreakerOut):
    released: int  # held messages let go now


class ResumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Resume while the rate is still at the pause threshold: the cause (a list, a content)
    # is dealt with; from then on only what follows the resume is judged.
    force: bool = False


def _out(breaker: Breaker, record: BreakerRecord, figures: Figures) -> BreakerOut:
    rate, settings = figures.rate, breaker.settings
    state: Literal["tripped", "alert", "clear"] = "clear"
    if record.tripped_at is not None:
        state = "tripped"
    elif record.alert_at is not None:
        state = "alert"
    return BreakerOut(
        state=state,
        tripped=record.tripped_at is not None,
        tripped_at=record.tripped_at,
        reason=record.reason if record.tripped_at is not None else None,
        tripped_on=None
        if record.tripped_at is None
        else TrippedOnOut(sends=record.sends, complaints=record.complaints, since=record.since),
        alert_since=record.alert_at,
        figures=FiguresOut(
            sends=figures.sends,
            complaints=figures.complaints,
            rate=None if rate is None else float(rate),
            rate_percent=None if rate is None else format_percent(rate),
            since=figures.since,
            at=figures.at,
            judged=judge(figures, settings).value,
        ),
        thresholds=ThresholdsOut(
            alert=format_percent(settings.alert),
            pause=format_percent(settings.pause),
            window=settings.window,
            min_sends=settings.min_sends,
        ),
        resumed_at=record.resumed_at,
        resumed_by=record.resumed_by or None,
        held_reason=holding(record),
    )


def breaker_router(breaker: Breaker) -> APIRouter:
    router = APIRouter(
        prefix="/admin/breaker", tags=["admin"], dependencies=[Depends(require_admin)]
    )
    conflict = {409: ERRORS[400] | {"description": "Not tripped, or the rate is still over."}}

    @router.get("", response_model=BreakerOut, responses=ERRORS)
    async def standing() -> BreakerOut:
        return _out(breaker, *await breaker.standing())

    @router.post("/resume", response_model=ResumedOut, responses={**ERRORS, **conflict})
    async def resume(
        request: Request,
        principal: Annotated[Principal, Depends(require_admin)],
        body: ResumeIn | None = None,
    ) -> ResumedOut | JSONResponse:
        """Let marketing go again; what the breaker held goes out."""
        force = body is not None and body.force
        try:
            released = await breaker.resume(principal.label, force=force)
        except ResumeRefused as refused:
            where = "/force" if refused.forcible else None
            return JSONResponse({"error": refused.reason, "where": where}, status_code=409)
        note_audit(
            request,
            f"resumed the protective breaker{' (forced)' if force else ''}: "
            f"{released} held messages let go",
        )
        out = _out(breaker, *await breaker.standing())
        return ResumedOut(**out.model_dump(), released=released)

    return router
