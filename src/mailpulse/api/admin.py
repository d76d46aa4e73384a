"""The admin API: look at contacts, their events, their messages and their segments."""

from __future__ import annotations

import time

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS, ContactOut, EventOut, EventsOut, MessageOut, MessagesOut
from mailpulse.audience.segments.explain import explain
from mailpulse.audience.segments.incremental import KeptHistory
from mailpulse.project import Project
from mailpulse.store import EventLog, StateStore
from mailpulse.types import SegmentState

_NEVER_EVALUATED = (
    "the contact's segment memberships have not been evaluated yet: the fold evaluates them "
    "at its next event; until then counts and memberships here may be incomplete"
)
_OTHER_SEGMENTS = (
    "the contact's segment memberships were last evaluated with other segment definitions: "
    "the fold evaluates them again at its next event; until then counts and memberships "
    "here may be out of date"
)


class VerdictOut(BaseModel):
    """One node of a segment's condition: what it asks, whether it holds, and why."""

    condition: str
    holds: bool
    reason: str
    children: list[VerdictOut] = []


class ExplanationOut(BaseModel):
    segment: str
    name: str
    member: bool
    condition: VerdictOut
    member_since: float | None
    next_change_at: float | None


class ExplanationsOut(BaseModel):
    contact_id: str
    at: float
    up_to_date: bool
    note: str | None = None
    segments: list[ExplanationOut]


def _staleness(state: SegmentState, fingerprint: str) -> str | None:
    """Why the stored memberships may not match the segments of the project, if they may."""
    if state.evaluated_by == fingerprint:
        return None
    return _NEVER_EVALUATED if not state.evaluated_by else _OTHER_SEGMENTS


async def canonical_contact(state: StateStore, contact_id: str) -> str:
    """Any identity (userId, anonymousId, alias) names its contact; HTTP 404 if none does."""
    # A merge re-points every identity of the merged contact, so one look-up reaches the
    # survivor.
    resolved = (await state.resolve([contact_id])).get(contact_id)
    if resolved is None:
        raise HTTPException(404, f"no contact known as {contact_id!r}")
    return resolved


def admin_router(log: EventLog, state: StateStore, project: Project) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
    segments = list(project.segments.values())
    # Of what the fold evaluates a state against: the segments and the journeys' branches.
    fingerprint = project.segment_set().fingerprint
    not_found = {404: ERRORS[400] | {"description": "No such contact."}}

    async def canonical(contact_id: str) -> str:
        return await canonical_contact(state, contact_id)

    @router.get(
        "/contacts/{contact_id}", response_model=ContactOut, responses={**ERRORS, **not_found}
    )
    async def get_contact(contact_id: str) -> ContactOut:
        cid = await canonical(contact_id)
        contact = await state.contact(cid)
        if contact is None:
            raise HTTPException(404, f"no contact known as {contact_id!r}")
        return ContactOut(
            id=contact.id,
            email=contact.email,
            email_error=contact.email_error,
            known=contact.known,
            first_seen=contact.first_seen,
            last_seen=contact.last_seen,
            traits=contact.traits,
            identities=await state.identities_of(cid),
        )

    @router.get(
        "/contacts/{contact_id}/explain",
        response_model=ExplanationsOut,
        responses={**ERRORS, **not_found},
    )
    async def explain_contact(contact_id: str) -> ExplanationsOut:
        """For every segment of the project, whether the contact is in it now and why: each
        condition with its verdict and a reason, from the aggregates the contact's state
        keeps."""
        cid = await canonical(contact_id)
        contact = await state.contact(cid)
        if contact is None:
            raise HTTPException(404, f"no contact known as {contact_id!r}")
        now = time.time()
        history = KeptHistory(contact.segments)
        # With no segments to explain, nothing here can be out of date.
        note = _staleness(contact.segments, fingerprint) if segments else None
        return ExplanationsOut(
            contact_id=cid,
            at=now,
            up_to_date=note is None,
            note=note,
            segments=[
                ExplanationOut.model_validate(
                    msgspec.to_builtins(explain(segment, contact, history, now, project.segments))
                )
                for segment in segments
            ],
        )

    @router.get(
        "/contacts/{contact_id}/events",
        response_model=EventsOut,
        responses={**ERRORS, **not_found},
    )
    async def contact_events(
        contact_id: str, limit: int = Query(200, ge=1, le=10_000)
    ) -> EventsOut:
        """The contact's whole history in log order: its own events and its emails' lifecycle."""
        cid = await canonical(contact_id)
        keys = sorted({cid, *await state.identities_of(cid)})
        events = await log.for_contact(keys, limit)
        return EventsOut(
            contact_id=cid,
            events=[
                EventOut(
                    offset=e.offset,
                    type=e.type,
                    event=e.event,
                    name=e.name,
                    message_id=e.message_id,
                    user_id=e.user_id,
                    anonymous_id=e.anonymous_id,
                    properties=e.properties,
                    traits=e.traits,
                    timestamp=e.timestamp,
                    received_at=e.received_at,
                )
                for e in events
                if not e.plumbing
            ],
        )

    @router.get(
        "/contacts/{contact_id}/messages",
        response_model=MessagesOut,
        responses={**ERRORS, **not_found},
    )
    async def contact_messages(
        contact_id: str, limit: int = Query(100, ge=1, le=10_000)
    ) -> MessagesOut:
        cid = await canonical(contact_id)
        ids = sorted({cid, *await state.identities_of(cid)})
        rows = await state.outbox_for_contact(ids, limit)
        return MessagesOut(
            contact_id=cid,
            messages=[
                MessageOut(
                    key=r.intent.key,
                    template=r.intent.template,
                    journey=r.intent.journey,
                    step=r.intent.step,
                    message_class=r.intent.message_class,
                    status=r.status,
                    attempts=r.attempts,
                    message_id=r.message_id,
                    last_code=r.last_code,
                    last_text=r.last_text,
                    created_at=r.intent.created_at,
                    updated_at=r.updated_at,
                )
                for r in rows
            ],
        )

    @router.get("/outbox", responses=ERRORS)
    async def outbox_counts() -> dict[str, int]:
        """How many messages are in each state."""
        return await state.outbox_counts()

    return router
