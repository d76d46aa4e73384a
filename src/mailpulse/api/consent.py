"""The admin API of consent: what a contact said about each topic, and when, where, how.

    GET /admin/contacts/{id}/consent   the contact's consent records, oldest first, and the
                                       state each topic's latest left

Any identity of the contact (userId, anonymousId, alias) names it; an unknown one is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.store import StateStore


class ConsentRecordOut(BaseModel):
    id: str  # of the event it was recorded from
    address: str
    topic: str  # "" = all marketing
    action: str  # granted, withdrawn or confirmed
    source: str  # api, import, preference_center, double_opt_in, one_click, mailto, ...
    at: float
    ip: str
    user_agent: str
    wording: str  # what the person was shown


class ConsentOut(BaseModel):
    contact_id: str
    # Topic → its latest action: what an opt-in topic's marketing asks for.
    topics: dict[str, str]
    records: list[ConsentRecordOut]


def consent_router(state: StateStore) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
    not_found = {404: ERRORS[400] | {"description": "No such contact."}}

    @router.get(
        "/contacts/{contact_id}/consent",
        response_model=ConsentOut,
        responses={**ERRORS, **not_found},
    )
    async def contact_consent(
        contact_id: str, limit: int = Query(1000, ge=1, le=10_000)
    ) -> ConsentOut:
        """The latest `limit` consent records of the contact, oldest first."""
        cid = (await state.resolve([contact_id])).get(contact_id)
        contact = None if cid is None else await state.contact(cid)
        if cid is None or contact is None:
            raise HTTPException(404, f"no contact known as {contact_id!r}")
        records = await state.consents_of(cid, limit)
        return ConsentOut(
            contact_id=cid,
            topics=contact.consent,
            records=[
                ConsentRecordOut(
                    id=r.id,
                    address=r.address,
                    topic=r.topic,
                    action=r.action,
                    source=r.source,
                    at=r.at,
                    ip=r.ip,
                    user_agent=r.user_agent,
                    wording=r.wording,
                )
                for r in records
            ],
        )

    return router
