"""The admin API of campaigns: create one (at once or from a given time), follow it, pause,
resume or cancel it.

    POST /admin/campaigns                   {"id", "template", "audience", "topic"?, "send_at"?}
    GET  /admin/campaigns                   every campaign, where it stands
    GET  /admin/campaigns/{id}              one, with its messages per delivery state
    POST /admin/campaigns/{id}/pause|resume|cancel

A template or segment the project does not have is a 404 naming it; an id taken, or a move
the campaign's state does not allow (resuming a cancelled one), a 409. Nothing changes then.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

import msgspec
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.audience.segments import DefinitionError
from mailpulse.campaigns import (
    CANCELLED,
    PAUSED,
    SCHEDULED,
    SENDING,
    Campaign,
    campaign_from_data,
)
from mailpulse.project import Project
from mailpulse.store import CampaignRecord, StateStore

_decode = msgspec.json.Decoder(Campaign).decode
_encode = msgspec.json.Encoder().encode
# What each action may move a campaign from, and to (a sent campaign takes none).
_MOVES: dict[str, tuple[tuple[str, ...], str]] = {
    "pause": ((SCHEDULED, SENDING), PAUSED),
    "resume": ((PAUSED,), SENDING),
    "cancel": ((SCHEDULED, SENDING, PAUSED), CANCELLED),
}


class SegmentAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    segment: str


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str | None = Field(default=None, min_length=1)
    template: str
    audience: Literal["all"] | SegmentAudience
    topic: str | None = Field(default=None, min_length=1)
    send_at: datetime | None = None  # none: at once; a time without an offset is UTC
    # Or: at this wall-clock time on each recipient's own clock (trait timezone, else the
    # project's); an offset in it is ignored.
    local_time: datetime | None = None


class CampaignOut(BaseModel):
    id: str
    name: str
    template: str
    segment: str | None
    topic: str | None
    send_at: float
    local_time: str | None
    status: str
    queued: int  # recipients whose message was queued so far
    # How many contacts the segment holds now (what the campaign reaches, give or take the
    # ones without an address); None for "all".
    audience: int | None = None
    messages: dict[str, int] | None = None  # per delivery state, for one campaign


def _out(
    record: CampaignRecord,
    messages: dict[str, int] | None = None,
    members: dict[str, int] | None = None,
) -> CampaignOut:
    campaign = _decode(record.body)
    audience = None
    if members is not None and campaign.segment is not None:
        audience = members.get(campaign.segment, 0)
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        template=campaign.template,
        segment=campaign.segment,
        topic=campaign.topic,
        send_at=campaign.send_at,
        local_time=campaign.local_time,
        status=record.status,
        queued=record.appended,
        audience=audience,
        messages=messages,
    )


def campaigns_router(state: StateStore, project: Project) -> APIRouter:
    router = APIRouter(
        prefix="/admin/campaigns", tags=["admin"], dependencies=[Depends(require_admin)]
    )
    not_found = {404: ERRORS[400] | {"description": "No such campaign, template or segment."}}
    conflict = {409: ERRORS[400] | {"description": "Not in a state that allows it."}}
    responses = {**ERRORS, **not_found, **conflict}

    async def record_of(campaign_id: str) -> CampaignRecord:
        record = await state.campaign(campaign_id)
        if record is None:
            raise HTTPException(404, f"no campaign {campaign_id!r}")
        return record

    @router.post("", status_code=201, response_model=CampaignOut, responses=responses)
    async def create(body: CampaignIn) -> CampaignOut:
        """Queue a campaign: sent at once, or from `send_at`."""
        data = body.model_dump(exclude_none=True)
        if body.send_at is not None:
            moment = body.send_at
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            data["send_at"] = moment.timestamp()
        if body.local_time is not None:
            wall = body.local_time.replace(tzinfo=None)
            data["local_time"] = wall.isoformat(timespec="minutes")
        now = time.time()
        try:
            campaign = campaign_from_data(
                data,
                templates=project.templates.names(),
                segments=project.segments.keys(),
                now=now,
            )
        except DefinitionError as error:
            # The body's shape is checked above: what is left is a name of nothing here.
            raise HTTPException(404, f"{error.reason} (at {error.pointer})") from error
        if not await state.create_campaign(campaign.id, SCHEDULED, _encode(campaign), now):
            raise HTTPException(409, f"a campaign {campaign.id!r} exists: give it another id")
        return _out(await record_of(campaign.id))

    @router.get("", response_model=list[CampaignOut], responses=ERRORS)
    async def list_campaigns() -> list[CampaignOut]:
        return [_out(record) for record in await state.campaigns()]

    @router.get("/{campaign_id}", response_model=CampaignOut, responses={**ERRORS, **not_found})
    async def get_campaign(campaign_id: str) -> CampaignOut:
        record = await record_of(campaign_id)
        messages = await state.campaign_messages(campaign_id)
        return _out(record, messages, await state.segment_members())

    async def move(campaign_id: str, action: str) -> CampaignOut:
        record = await record_of(campaign_id)
        allowed, to = _MOVES[action]
        if record.status not in allowed:
            raise HTTPException(
                409,
                f"campaign {campaign_id!r} is {record.status}: it can {action} only when "
                f"{' or '.join(allowed)}",
            )
        await state.set_campaign_status(campaign_id, to, time.time())
        return _out(await record_of(campaign_id))

    @router.post("/{campaign_id}/pause", response_model=CampaignOut, responses=responses)
    async def pause(campaign_id: str) -> CampaignOut:
        """Stop reading the audience; messages already queued still go."""
        return await move(campaign_id, "pause")

    @router.post("/{campaign_id}/resume", response_model=CampaignOut, responses=responses)
    async def resume(campaign_id: str) -> CampaignOut:
        """Read on from where it stopped."""
        return await move(campaign_id, "resume")

    @router.post("/{campaign_id}/cancel", response_model=CampaignOut, responses=responses)
    async def cancel(campaign_id: str) -> CampaignOut:
        """For good: nobody else gets it."""
        return await move(campaign_id, "cancel")

    return router
