"""The admin API of journeys: how each is doing (entries, finishes, exits, the way contacts
went at each split and branch, per version; what its messages did: opened, clicked, converted,
revenue), and pause, resume and archive.

Paused: nobody enters, and contacts in it stay where they are (their timers wait) until it is
resumed; a goal met while paused still ends a contact's run. Archived: nobody enters, and
contacts still in it leave at their next step; an archived journey stays archived.
The fold reads these controls at least every `CONTROLS_EVERY` seconds.
"""

from __future__ import annotations

import time
from collections import defaultdict

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from mailpulse.api.auth import require_admin
from mailpulse.api.engagement import EngagementOut, engagement_of
from mailpulse.api.models import ERRORS
from mailpulse.project import Project
from mailpulse.runtime.fold import ARCHIVED, CONTROLS_EVERY, PAUSED
from mailpulse.store import StateStore

LIVE = "live"
_OUTCOMES = ("entered", "completed", "exited")


class VersionOut(BaseModel):
    version: str
    entered: int = 0
    completed: int = 0
    exited: int = 0
    # Split or branch step id → arm → how many contacts went that way.
    arms: dict[str, dict[str, int]] = {}


class JourneyOut(BaseModel):
    id: str
    name: str
    status: str
    version: str
    trigger: str
    active: int
    versions: list[VersionOut]
    engagement: EngagementOut  # of its messages, all versions


class JourneysOut(BaseModel):
    journeys: list[JourneyOut]


class ControlOut(BaseModel):
    id: str
    status: str
    takes_effect_within_s: float = CONTROLS_EVERY


def _versions(rows: list[tuple[str, str, int]]) -> list[VersionOut]:
    counts: dict[str, VersionOut] = {}
    arms: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for version, name, count in rows:
        out = counts.setdefault(version, VersionOut(version=version))
        if name in _OUTCOMES:
            setattr(out, name, count)
        else:
            step, _, arm = name.rpartition(":")
            arms[version][step][arm] = count
    for version, out in counts.items():
        out.arms = {step: dict(ways) for step, ways in arms[version].items()}
    return list(counts.values())


def journeys_router(state: StateStore, project: Project) -> APIRouter:
    router = APIRouter(
        prefix="/admin/journeys", tags=["admin"], dependencies=[Depends(require_admin)]
    )
    not_found = {404: ERRORS[400] | {"description": "No such journey."}}
    conflict = {409: ERRORS[400] | {"description": "An archived journey stays archived."}}

    def known(journey_id: str) -> None:
        if journey_id not in project.journeys:
            names = ", ".join(sorted(project.journeys)) or "none"
            raise HTTPException(
                404, f"no journey {journey_id!r} in the project (journeys: {names})"
            )

    async def describe(journey_id: str, controls: dict[str, str], active: int) -> JourneyOut:
        journey = project.journeys[journey_id]
        trigger = journey.trigger
        what = trigger.event
        segment = next((f.value for f in trigger.where if f.path == ("segment",)), None)
        if segment is not None and what.startswith("Segment "):
            what = f"{what}: {segment}"
        return JourneyOut(
            id=journey_id,
            name=journey.name,
            status=controls.get(journey_id, LIVE),
            version=journey.version,
            trigger=what,
            active=active,
            versions=_versions(await state.journey_counts(journey_id)),
            engagement=await engagement_of(state, f"journey:{journey_id}"),
        )

    @router.get("", response_model=JourneysOut, responses=ERRORS)
    async def list_journeys() -> JourneysOut:
        controls = await state.journey_controls()
        active = await state.active_instance_counts()
        return JourneysOut(
            journeys=[
                await describe(jid, controls, active.get(jid, 0))
                for jid in sorted(project.journeys)
            ]
        )

    @router.get("/{journey_id}", response_model=JourneyOut, responses={**ERRORS, **not_found})
    async def get_journey(journey_id: str) -> JourneyOut:
        known(journey_id)
        active = await state.active_instance_counts()
        return await describe(journey_id, await state.journey_controls(), active.get(journey_id, 0))

    async def control(journey_id: str, status: str) -> ControlOut:
        known(journey_id)
        current = (await state.journey_controls()).get(journey_id, LIVE)
        if current == ARCHIVED and status != ARCHIVED:
            raise HTTPException(
                409,
                f"journey {journey_id!r} is archived and stays so: to run it again, copy its "
                "file under a new name",
            )
        if current != status:
            await state.set_journey_control(journey_id, status, time.time())
        return ControlOut(id=journey_id, status=status)

    responses = {**ERRORS, **not_found, **conflict}

    @router.post("/{journey_id}/pause", response_model=ControlOut, responses=responses)
    async def pause(journey_id: str) -> ControlOut:
        """Nobody enters; contacts in it stay where they are until it is resumed."""
        return await control(journey_id, PAUSED)

    @router.post("/{journey_id}/resume", response_model=ControlOut, responses=responses)
    async def resume(journey_id: str) -> ControlOut:
        """Entries open again; timers that came due while paused fire at once."""
        return await control(journey_id, LIVE)

    @router.post("/{journey_id}/archive", response_model=ControlOut, responses=responses)
    async def archive(journey_id: str) -> ControlOut:
        """Nobody enters; contacts still in it leave at their next step. For good."""
        return await control(journey_id, ARCHIVED)

    return router
