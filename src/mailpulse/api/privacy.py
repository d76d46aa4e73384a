"""A contact's data over the admin API (GDPR Art. 15 and 17):

    GET    /admin/contacts/{id}/export   everything held on the contact, as one JSON document
    DELETE /admin/contacts/{id}          erase the contact: an erase event goes through the log
                                         and the fold that owns the contact carries it out (see
                                         mailpulse.privacy); 200 once it has, 202 if it has not
                                         within `wait` seconds (it will)

Both are kept in the audit log (an export too: it hands out personal data).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from mailpulse.api.admin import canonical_contact
from mailpulse.api.admin_gate import note_audit
from mailpulse.api.auth import require_admin
from mailpulse.api.ingest import AppendFn
from mailpulse.api.models import ERRORS
from mailpulse.policy.suppression import address_hash
from mailpulse.privacy.erasure import address_hashes_of, erase_event
from mailpulse.store import EventLog, LogUnavailable, StateStore
from mailpulse.types import Contact, EventType

# An export holds at most this many events and messages (the newest); `complete` says whether
# that was all of them.
MAX_EXPORTED = 100_000
_POLL = 0.05  # seconds between looks at whether the fold carried an erasure out


class ExportOut(BaseModel):
    contact_id: str
    exported_at: float
    erased_at: float | None  # once erased, only the ids and what says what happened are left
    profile: dict[str, Any]  # address, traits, lists, topics, consent, seen first and last
    identities: list[str]  # every id it is known by: userId, anonymousIds, aliases
    segments: dict[str, float]  # segment → member since
    journeys: list[dict[str, Any]]  # each run through a journey, with what it keeps
    consents: list[dict[str, Any]]  # consent records: what, when, where from, wording shown
    suppressions: list[dict[str, Any]]  # entries of its addresses
    messages: list[dict[str, Any]]  # every message made for it, newest first, and its fate
    events: list[dict[str, Any]]  # its events in the log, in log order
    complete: bool  # False: more than MAX_EXPORTED events or messages, the newest are here


class ErasedOut(BaseModel):
    contact_id: str
    erased: bool  # False: asked, and the fold has yet to carry it out
    erased_at: float | None


def _profile(contact: Contact) -> dict[str, Any]:
    return {
        "email": contact.email,
        "email_error": contact.email_error,
        "known": contact.known,
        "first_seen": contact.first_seen,
        "last_seen": contact.last_seen,
        "traits": contact.traits,
        "lists": contact.lists,
        "topics": contact.segments.topics,
        "consent": contact.consent,
        "ab_tests": msgspec.to_builtins(contact.variants),
    }


def privacy_router(log: EventLog, state: StateStore, append: AppendFn) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
    not_found = {404: ERRORS[400] | {"description": "No such contact."}}
    unavailable = {503: ERRORS[400] | {"description": "The log is unavailable; nothing changed."}}

    async def known(contact_id: str) -> Contact:
        cid = await canonical_contact(state, contact_id)
        contact = await state.contact(cid)
        if contact is None:
            raise HTTPException(404, f"no contact known as {contact_id!r}")
        return contact

    @router.get(
        "/contacts/{contact_id}/export",
        response_model=ExportOut,
        responses={**ERRORS, **not_found},
    )
    async def export_contact(contact_id: str, request: Request) -> ExportOut:
        """All data held on a contact, by any of its ids."""
        contact = await known(contact_id)
        cid = contact.id
        ids = sorted({cid, *await state.identities_of(cid)})
        events = await log.for_contact(ids, MAX_EXPORTED)
        messages = await state.outbox_for_contact(ids, MAX_EXPORTED)
        hashes = {address_hash(contact.email)} if contact.email else set()
        for event in events:
            if event.type == EventType.ERASE:
                hashes.update(address_hashes_of(event))
        note_audit(request, "exported the contact's data", contact_id=cid)
        return ExportOut(
            contact_id=cid,
            exported_at=time.time(),
            erased_at=contact.erased_at or None,
            profile=_profile(contact),
            identities=ids,
            segments=contact.segments.members,
            journeys=[
                {**msgspec.json.decode(r.body), "status": r.status}
                for r in await state.instances_for(cid)
            ],
            consents=msgspec.to_builtins(await state.consents_of(cid, MAX_EXPORTED)),
            suppressions=msgspec.to_builtins(await state.suppressions_for(sorted(hashes))),
            messages=[
                {
                    **msgspec.to_builtins(row.intent),
                    "status": row.status,
                    "attempts": row.attempts,
                    "message_id": row.message_id,
                    "last_code": row.last_code,
                    "last_text": row.last_text,
                    "updated_at": row.updated_at,
                }
                for row in messages
            ],
            events=[msgspec.to_builtins(e) for e in events if not e.plumbing],
            complete=len(events) < MAX_EXPORTED and len(messages) < MAX_EXPORTED,
        )

    @router.delete(
        "/contacts/{contact_id}",
        response_model=ErasedOut,
        responses={
            **ERRORS,
            **not_found,
            **unavailable,
            202: {"model": ErasedOut, "description": "Asked; not yet carried out."},
        },
    )
    async def erase_contact(
        contact_id: str,
        request: Request,
        wait: float = Query(10.0, ge=0, le=60, description="Seconds to wait for it to be done."),
    ) -> ErasedOut | JSONResponse:
        """Erase a contact (by any of its ids): its personal data goes from the profile, its
        events, messages and consent records; a hashed `erased` suppression entry keeps its
        address from ever being mailed again; its ids stay erased."""
        contact = await known(contact_id)
        cid = contact.id
        if not contact.erased_at:
            hashes = [address_hash(contact.email)] if contact.email else []
            try:
                await append([erase_event(cid, hashes, time.time())])
            except LogUnavailable as exc:
                raise HTTPException(503, f"the event log is unavailable: {exc}") from exc
            note_audit(request, "erasure asked", contact_id=cid)
        else:
            note_audit(request, "erased already", contact_id=cid)
        deadline = time.monotonic() + wait
        while not contact.erased_at and time.monotonic() < deadline:
            await asyncio.sleep(_POLL)
            contact = await state.contact(cid) or contact
        done = ErasedOut(
            contact_id=cid, erased=bool(contact.erased_at), erased_at=contact.erased_at or None
        )
        if done.erased:
            return done
        return JSONResponse(done.model_dump(), status_code=202)

    return router
