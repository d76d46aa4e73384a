"""The admin API of segments: the project's segments with how many contacts each holds now,
and a check of a definition written in the same schema as `segments/*.yaml`.

Segments are defined in the project's files, kept in git and loaded at start; the check lets
a tool (or a person with curl) try a definition first, and answers with the same reasons,
pointing into the JSON instead of at a line.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from pydantic import BaseModel, ConfigDict

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.audience.segments import DefinitionError, Segment, segment_from_data
from mailpulse.audience.segments.conditions import BadReference, evaluation_order, referenced
from mailpulse.project import Project
from mailpulse.store import StateStore


class SegmentOut(BaseModel):
    id: str
    name: str
    description: str
    version: str
    members: int


class SegmentsOut(BaseModel):
    segments: list[SegmentOut]


class SegmentDefinition(BaseModel):
    """A segment as `segments/<id>.yaml` holds it, with its id."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str | None = None
    description: str | None = None
    conditions: Any


class CheckedOut(BaseModel):
    """The verdict on a definition: good (its version and the segments it refers to), or
    not (`error` says what to fix, `where` points into the JSON)."""

    ok: bool
    id: str
    version: str | None = None
    refers_to: list[str] = []
    error: str | None = None
    where: str | None = None


_CHECK_EXAMPLE = {
    "id": "engaged",
    "name": "Engaged shoppers",
    "conditions": {
        "all": [
            {"performed": "Product Added", "at_least": 2, "within": "1h"},
            {"segment": "vip"},
        ]
    },
}


def _out(segment: Segment, members: dict[str, int]) -> SegmentOut:
    return SegmentOut(
        id=segment.id,
        name=segment.name,
        description=segment.description,
        version=segment.version,
        members=members.get(segment.id, 0),
    )


def segments_router(state: StateStore, project: Project) -> APIRouter:
    router = APIRouter(
        prefix="/admin/segments", tags=["admin"], dependencies=[Depends(require_admin)]
    )
    not_found = {404: ERRORS[400] | {"description": "No such segment."}}

    @router.get("", response_model=SegmentsOut, responses=ERRORS)
    async def list_segments() -> SegmentsOut:
        members = await state.segment_members()
        return SegmentsOut(
            segments=[_out(project.segments[sid], members) for sid in sorted(project.segments)]
        )

    @router.get("/{segment_id}", response_model=SegmentOut, responses={**ERRORS, **not_found})
    async def get_segment(segment_id: str) -> SegmentOut:
        segment = project.segments.get(segment_id)
        if segment is None:
            names = ", ".join(sorted(project.segments)) or "none"
            raise HTTPException(
                404, f"no segment {segment_id!r} in the project (segments: {names})"
            )
        return _out(segment, await state.segment_members())

    @router.post("/check", response_model=CheckedOut, responses=ERRORS)
    async def check_segment(
        definition: SegmentDefinition = Body(..., examples=[_CHECK_EXAMPLE]),  # noqa: B008
    ) -> CheckedOut:
        """Whether a definition is good, as the project would load it: its conditions and
        the segments it refers to, which must be the project's (never in a cycle). The
        answer is 200 either way; a bad definition's says what to fix and where."""
        data = definition.model_dump(exclude={"id"}, exclude_none=True)
        data["conditions"] = definition.conditions  # a null is the definition's own mistake
        try:
            segment = segment_from_data(definition.id, data)
            evaluation_order({**project.segments, segment.id: segment})
        except DefinitionError as error:
            return CheckedOut(
                ok=False, id=definition.id, error=error.reason, where=error.pointer or "/"
            )
        except BadReference as error:  # a reference to no segment, or a cycle
            return CheckedOut(ok=False, id=definition.id, error=str(error), where="/conditions")
        return CheckedOut(
            ok=True,
            id=segment.id,
            version=segment.version,
            refers_to=sorted(referenced(segment.condition)),
        )

    return router
