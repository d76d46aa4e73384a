"""The audit log over the admin API (see mailpulse.api.admin_gate for what is kept):

GET /admin/audit?since=&until=&before=&limit=   entries newest first; `since` and `until`
                                                are epoch seconds or ISO 8601 (UTC when no
                                                zone is given); `next` is the following
                                                page's `before`
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from mailpulse.access import AccessStore, AuditEntry
from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS


class AuditEntryOut(BaseModel):
    id: int
    at: float
    actor: str  # "key mpk_…", "project admin key" or "unauthenticated"
    key_id: str
    scope: str
    method: str
    path: str
    target: dict[str, str]
    summary: str
    status: int
    outcome: str  # done, refused (4xx) or failed (5xx)
    ip: str


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    next: int | None  # give it as `before` for the next (older) page; None: this was the last


def moment(text: str | None) -> float | None:
    """Epoch seconds from epoch seconds or ISO 8601 (UTC when no zone is given); ValueError
    for anything else."""
    if text is None or not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch seconds nor ISO 8601") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _out(e: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=e.id,
        at=e.at,
        actor=e.actor,
        key_id=e.key_id,
        scope=e.scope,
        method=e.method,
        path=e.path,
        target=e.target,
        summary=e.summary,
        status=e.status,
        outcome=e.outcome,
        ip=e.ip,
    )


def audit_router(access: AccessStore) -> APIRouter:
    router = APIRouter(prefix="/admin/audit", tags=["admin"], dependencies=[Depends(require_admin)])

    unreadable = {422: ERRORS[400] | {"description": "`since` or `until` is not a time."}}

    @router.get("", response_model=AuditPageOut, responses={**ERRORS, **unreadable})
    async def audit_log(
        since: str | None = Query(None, description="Kept at or after: epoch s or ISO 8601."),
        until: str | None = Query(None, description="Kept before: epoch s or ISO 8601."),
        # Bounded as the stores' 64-bit ids are: SQLite cannot even compare a bigger one.
        before: int | None = Query(
            None, ge=1, le=2**63 - 1, description="The `next` of the page before."
        ),
        limit: int = Query(100, ge=1, le=1000),
    ) -> AuditPageOut | JSONResponse:
        """Admin actions, and attempts refused, newest first."""
        bounds: dict[str, float | None] = {}
        for name, given in (("since", since), ("until", until)):
            try:
                bounds[name] = moment(given)
            except ValueError as exc:
                return JSONResponse({"error": f"{name}: {exc}", "where": name}, status_code=422)
        page = await access.audit(**bounds, before=before, limit=limit)
        last = page[-1].id if len(page) == limit else None
        return AuditPageOut(entries=[_out(e) for e in page], next=last)

    return router
