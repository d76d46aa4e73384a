"""The admin API of campaigns: create one (at once or from a given time), follow it, pause,
resume or cancel it.

    POST /admin/campaigns                   {"id", "template", "audience", "topic"?, "sender"?,
                                             "send_at"?}
    GET  /admin/campaigns                   every campaign, where it stands
    GET  /admin/campaigns/{id}              one, with its messages per delivery state and
                                            what they did (opened, clicked, converted)
    POST /admin/campaigns/{id}/pause|resume|cancel
    POST /admin/campaigns/{id}/winner       {"variant": "b"}: the rest of an A/B test's audience
                                            gets it, whatever the test says or would say

A body of the wrong shape is a 400; a template, segment or topic the project does not have a 404
naming it; a body of the right shape that means nothing that can be done (two variants of one
id, a subject line that does not compile, send_at and local_time both) a 422; each with a
JSON Pointer to the mistake (`where`). An id taken, or a move the campaign's state does not
allow (resuming a cancelled one), is a 409. Nothing changes then.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mailpulse.api.auth import require_admin
from mailpulse.api.engagement import EngagementOut, engagement_of
from mailpulse.api.models import ERRORS
from mailpulse.audience import lists
from mailpulse.audience.segments import DefinitionError
from mailpulse.campaigns import (
    AWAITING_DECISION,
    CANCELLED,
    PAUSED,
    SCHEDULED,
    SENDING,
    SENT,
    TESTING,
    Campaign,
    campaign_from_data,
)
from mailpulse.campaigns.abtest import REST, TEST, WAIT
from mailpulse.campaigns.decision import Counts, decode_decision, figures, picked
from mailpulse.project import Project
from mailpulse.runtime.breaker import holding
from mailpulse.store import CampaignRecord, StateStore
from mailpulse.yamlnodes import suggest

_decode = msgspec.json.Decoder(Campaign).decode
_encode = msgspec.json.Encoder().encode
# A campaign in these reads recipients on (or will), which the protective breaker stops.
_HELD_WHILE = (SCHEDULED, SENDING, TESTING, AWAITING_DECISION)
# What each action may move a campaign from, and to (a sent campaign takes none).
_MOVES: dict[str, tuple[tuple[str, ...], str]] = {
    "pause": ((SCHEDULED, SENDING, TESTING, AWAITING_DECISION), PAUSED),
    "resume": ((PAUSED,), SENDING),  # or back to testing, if it was waiting for its decision
    "cancel": ((SCHEDULED, SENDING, PAUSED, TESTING, AWAITING_DECISION), CANCELLED),
}


class SegmentAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    segment: str


class ListAudience(BaseModel):
    model_config = ConfigDict(extra="forbid")
    list: str


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str | None = Field(default=None, min_length=1)
    template: str
    audience: Literal["all"] | SegmentAudience | ListAudience
    topic: str | None = Field(default=None, min_length=1)
    sender: str | None = Field(default=None, min_length=3)  # its From, if not the project's
    send_at: datetime | None = None  # none: at once; a time without an offset is UTC
    # Or: at this wall-clock time on each recipient's own clock (trait timezone, else the
    # project's); an offset in it is ignored.
    local_time: datetime | None = None
    # Checked by mailpulse.campaigns.abtest, whose errors point into it.
    ab_test: dict[str, Any] | None = None


class WinnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    variant: str


class VariantOut(BaseModel):
    id: str
    subject: str | None = None  # None: the template's own
    template: str | None = None  # None: the campaign's


class ConversionOut(BaseModel):
    event: str
    within: float  # seconds after the recipient's send


class VariantFiguresOut(BaseModel):
    id: str
    sent: int  # contacts of the test share sent this variant
    opens: int  # of those, how many opened (each once), clicked, converted
    clicks: int
    conversions: int
    rate: float  # of winner_by, over sent
    # The two-proportion z-test of the best variant against this one (none for the best).
    z: float | None = None
    p: float | None = None


class DecisionOut(BaseModel):
    winner: str | None  # None: the test could not tell
    rest: list[str]  # what the rest of the audience gets (split evenly); empty: a person picks
    by: str  # "test" or "operator"
    winner_by: str
    confidence: float
    z: float | None  # the weakest comparison of the best variant with another
    p: float | None
    variants: list[VariantFiguresOut]  # the figures it was taken on
    decided_at: float


class AbTestOut(BaseModel):
    variants: list[VariantOut]
    test_share: float
    wait: float  # seconds
    winner_by: str
    conversion: ConversionOut | None = None
    confidence: float
    if_undecided: str
    phase: str  # test: sending the test share; wait: for the decision; rest: sending the rest
    decide_at: float | None
    figures: list[VariantFiguresOut] | None = None  # as they stand, for one campaign
    decision: DecisionOut | None = None


class CampaignOut(BaseModel):
    id: str
    name: str
    template: str
    segment: str | None
    list: str | None = None
    topic: str | None
    sender: str | None = None
    send_at: float
    local_time: str | None
    status: str
    queued: int  # recipients whose message was queued so far
    # How many contacts the segment or list holds now (what the campaign reaches, give or
    # take the ones without an address); None for "all".
    audience: int | None = None
    messages: dict[str, int] | None = None  # per delivery state, for one campaign
    # Opens, clicks (people apart from machines), conversions and revenue, for one campaign.
    engagement: EngagementOut | None = None
    ab_test: AbTestOut | None = None
    # Why its messages wait and no further recipient is read: the protective breaker tripped
    # (see GET /admin/breaker); None while marketing goes out.
    held: str | None = None


def _ab_test_out(record: CampaignRecord, campaign: Campaign, counts: Counts | None) -> AbTestOut:
    assert campaign.ab_test is not None
    shown = msgspec.to_builtins(campaign.ab_test)
    return AbTestOut.model_validate(
        {
            **shown,
            "confidence": campaign.ab_test.confidence,
            "if_undecided": campaign.ab_test.if_undecided,
            "phase": record.phase or TEST,
            "decide_at": record.decide_at,
            "figures": None
            if counts is None
            else msgspec.to_builtins(figures(campaign.ab_test, counts)),
            "decision": msgspec.to_builtins(decode_decision(record.decision))
            if record.decision
            else None,
        }
    )


def _refused(status: int, reason: str, where: str) -> JSONResponse:
    return JSONResponse({"error": reason, "where": where}, status_code=status)


def _out(
    record: CampaignRecord,
    messages: dict[str, int] | None = None,
    members: dict[str, int] | None = None,
    counts: Counts | None = None,
    held: str | None = None,
    engagement: EngagementOut | None = None,
) -> CampaignOut:
    """`held`: why marketing is held now, shown for a campaign that has recipients to read or
    messages waiting."""
    campaign = _decode(record.body)
    waiting = messages is not None and any(messages.get(s) for s in ("queued", "deferred"))
    if record.status not in _HELD_WHILE and not waiting:
        held = None
    audience = None
    if members is not None and campaign.segment is not None:
        audience = members.get(campaign.segment, 0)
    if members is not None and campaign.list is not None:
        audience = members.get(lists.members_key(campaign.list), 0)
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        template=campaign.template,
        segment=campaign.segment,
        list=campaign.list,
        topic=campaign.topic,
        sender=campaign.sender,
        send_at=campaign.send_at,
        local_time=campaign.local_time,
        status=record.status,
        queued=record.appended,
        audience=audience,
        messages=messages,
        engagement=engagement,
        ab_test=None if campaign.ab_test is None else _ab_test_out(record, campaign, counts),
        held=held,
    )


def campaigns_router(state: StateStore, project: Project) -> APIRouter:
    router = APIRouter(
        prefix="/admin/campaigns", tags=["admin"], dependencies=[Depends(require_admin)]
    )
    not_found = {404: ERRORS[400] | {"description": "No such campaign, template or segment."}}
    conflict = {409: ERRORS[400] | {"description": "Not in a state that allows it."}}
    unprocessable = {
        422: ERRORS[400] | {"description": "Of the right shape, but meaning nothing possible."}
    }
    responses = {**ERRORS, **not_found, **conflict, **unprocessable}

    async def record_of(campaign_id: str) -> CampaignRecord:
        record = await state.campaign(campaign_id)
        if record is None:
            raise HTTPException(404, f"no campaign {campaign_id!r}")
        return record

    @router.post("", status_code=201, response_model=CampaignOut, responses=responses)
    async def create(body: CampaignIn) -> CampaignOut | JSONResponse:
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
        members = await state.segment_members()
        try:
            campaign = campaign_from_data(
                data,
                templates=project.templates.names(),
                segments=project.segments.keys(),
                now=now,
                lists=lists.lists_in(members),
                signing_domain=project.config.dkim.domain if project.config.dkim else None,
                topics=project.topics.keys(),
                conversion=project.conversion,
            )
        except DefinitionError as error:
            named = error.reason.startswith(
                ("no template named", "no segment named", "no contacts are in a list", "no topic")
            )
            return _refused(404 if named else 422, error.reason, error.pointer)
        if not await state.create_campaign(campaign.id, SCHEDULED, _encode(campaign), now):
            raise HTTPException(409, f"a campaign {campaign.id!r} exists: give it another id")
        return _out(await record_of(campaign.id), members=members)

    @router.get("", response_model=list[CampaignOut], responses=ERRORS)
    async def list_campaigns() -> list[CampaignOut]:
        held = holding(await state.breaker())
        return [_out(record, held=held) for record in await state.campaigns()]

    @router.get("/{campaign_id}", response_model=CampaignOut, responses={**ERRORS, **not_found})
    async def get_campaign(campaign_id: str) -> CampaignOut:
        record = await record_of(campaign_id)
        messages = await state.campaign_messages(campaign_id)
        tested = _decode(record.body).ab_test is not None
        counts = await state.variant_counts(campaign_id) if tested else None
        held = holding(await state.breaker())
        engagement = await engagement_of(state, f"campaign:{campaign_id}")
        return _out(record, messages, await state.segment_members(), counts, held, engagement)

    async def move(campaign_id: str, action: str) -> CampaignOut:
        record = await record_of(campaign_id)
        allowed, to = _MOVES[action]
        if record.status not in allowed:
            raise HTTPException(
                409,
                f"campaign {campaign_id!r} is {record.status}: it can {action} only when "
                f"{' or '.join(allowed)}",
            )
        if action == "resume" and record.phase == WAIT:
            to = TESTING  # decided when it is time (or at once, when that has passed)
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

    @router.post("/{campaign_id}/winner", response_model=CampaignOut, responses=responses)
    async def pick_winner(campaign_id: str, body: WinnerIn) -> CampaignOut | JSONResponse:
        """The rest of an A/B test's audience gets this variant: picked before the test is
        decided, or when it could not tell (`awaiting decision`)."""
        record = await record_of(campaign_id)
        ab_test = _decode(record.body).ab_test
        if ab_test is None:
            raise HTTPException(409, f"campaign {campaign_id!r} has no A/B test")
        if ab_test.variant(body.variant) is None:
            known = ab_test.variant_ids
            return _refused(
                422, f"no variant {body.variant!r}: {suggest(body.variant, known)}", "/variant"
            )
        if record.phase == REST or record.status in (SENT, CANCELLED):
            raise HTTPException(
                409, f"campaign {campaign_id!r} is {record.status}: its test is decided already"
            )
        now = time.time()
        decision = picked(ab_test, await state.variant_counts(campaign_id), body.variant, now)
        moved = await state.set_campaign_phase(
            record,
            status=TESTING if record.status == AWAITING_DECISION else record.status,
            cursor=record.cursor,
            phase=record.phase,
            decide_at=record.decide_at,
            decision=_encode(decision),
            at=now,
        )
        if not moved:
            raise HTTPException(409, f"campaign {campaign_id!r} changed meanwhile: try again")
        return _out(await record_of(campaign_id))

    return router
