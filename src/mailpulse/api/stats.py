"""KPIs over the admin API (read scope): what became of the messages of a time range, all
together or per campaign, journey or template (see mailpulse.observe.kpis for each figure).

    GET /admin/stats?from=&to=&by=all|campaign|journey|template&key=&bucket=hour|day

`from` and `to` are ISO 8601 (UTC when no zone is given) or epoch seconds; no `from` is the
beginning (1970), no `to` now. The figures count whole hours: the range is widened to the hours it
touches, and the answer says which (`from`, `to`). `by` without `key` gives a row per campaign,
journey or template that had any message in the range; with `key`, that one's row. `bucket`
makes a series: a row per key and hour or day (UTC), empty ones included, ordered by key and
start (at most MAX_BUCKETS per key).

Each refusal names the parameter (`where`), as the rest of the admin API does: a time not
written as one, or a `by` or `bucket` not among those, is a 400 (off the documented schema); a
well-formed time that is none (February 30), a range that ends before it starts, a `key`
without `by` or a series too long is a 422; a key the project and the store do not know is a
404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mailpulse.api.audit import moment
from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.observe.kpis import ALL, Grouping, hours_of, kpis, series_length
from mailpulse.project import Project
from mailpulse.store import StateStore

MAX_BUCKETS = 10_000  # a year of hours, with room
# The last hour whose end a datetime can still hold.
_LAST = datetime(9999, 12, 31, 23, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # where a range without `from` begins


class StatsOut(BaseModel):
    from_: str = Field(serialization_alias="from")  # the first hour counted (ISO 8601, UTC)
    to: str  # the end of the last hour counted
    by: str
    key: str | None
    bucket: str | None
    # KpiRow.to_json(): key, start (in a series), the figures and the rates
    rows: list[dict[str, Any]]


# Epoch seconds, or ISO 8601 as datetime.fromisoformat reads it (a date, a time, a zone).
_TIME = (
    r"^(-?\d{1,12}(\.\d+)?"
    r"|\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?)$"
)


class _BadInput(Exception):
    def __init__(self, where: str, error: str, status: int = 422) -> None:
        super().__init__(error)
        self.where, self.error, self.status = where, error, status


def _instant(name: str, text: str | None) -> datetime | None:
    try:
        at = moment(text)
        instant = None if at is None else datetime.fromtimestamp(at, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise _BadInput(name, f"{name}: {exc}") from None
    if instant is not None and instant >= _LAST:
        raise _BadInput(name, f"{name}: past the last hour of year 9999")
    return instant


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


async def _known(state: StateStore, project: Project, by: str, key: str) -> bool:
    """Whether `key` names a campaign, journey or template, of the project or of the past."""
    if by == "campaign":
        return await state.campaign(key) is not None
    if by == "journey":
        if key in project.journeys:
            return True
        return any(journey == key for journey, _, _ in await state.journey_versions())
    if key in project.templates:
        return True
    return bool(await state.rollup(0, 2**62, by="template", key=key))


def stats_router(state: StateStore, project: Project) -> APIRouter:
    router = APIRouter(prefix="/admin/stats", tags=["admin"], dependencies=[Depends(require_admin)])

    refused = {
        404: ERRORS[400] | {"description": "No campaign, journey or template of that key."},
        422: ERRORS[400] | {"description": "A time that is none, or a range that cannot be."},
    }

    @router.get("", response_model=StatsOut, responses={**ERRORS, **refused})
    async def stats(
        from_: str | None = Query(
            None, alias="from", pattern=_TIME, description="ISO 8601 or epoch seconds."
        ),
        to: str | None = Query(
            None, pattern=_TIME, description="ISO 8601 or epoch seconds; now if none."
        ),
        by: Annotated[Grouping, Query(description="All together, or per one of these.")] = ALL,
        key: str | None = Query(
            None,
            pattern=r"^[^\x00-\x1f\x7f]{1,200}$",
            description="A campaign, journey or template.",
        ),
        bucket: Literal["hour", "day"] | None = Query(None, description="A series of these."),
    ) -> StatsOut | JSONResponse:
        """What became of the messages of a time range (figures and rates)."""
        try:
            start, end = _instant("from", from_), _instant("to", to)
            end = end or datetime.now(UTC)
            if start is not None and end < start:
                raise _BadInput("to", "the range ends before it starts: to is before from")
            if start is None and end < _EPOCH:
                raise _BadInput(
                    "to", "the range ends before it starts: to is before 1970, where from begins"
                )
            if key is not None and by == ALL:
                raise _BadInput("key", "a key needs by=campaign, journey or template")
            if bucket is not None and series_length(start, end, bucket) > MAX_BUCKETS:
                raise _BadInput(
                    "bucket",
                    f"more than {MAX_BUCKETS:,} {bucket}s in the range: narrow it (from is "
                    "the beginning of time when not given) or take bigger buckets",
                )
            if key is not None and not await _known(state, project, by, key):
                raise _BadInput("key", f"no {by} {key!r} in this project", 404)
        except _BadInput as bad:
            return JSONResponse({"error": bad.error, "where": bad.where}, status_code=bad.status)
        rows = await kpis(state, start=start, end=end, by=by, key=key, bucket=bucket)
        since, until = hours_of(start, end)
        return StatsOut(
            from_=_iso(since),
            to=_iso(until),
            by=by,
            key=key,
            bucket=bucket,
            rows=[row.to_json() for row in rows],
        )

    return router
