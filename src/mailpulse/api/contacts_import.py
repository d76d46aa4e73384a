"""`POST /admin/contacts/import`: contacts upserted in bulk, each row checked first.

The body holds up to 10,000 rows (`contacts`), as `mailpulse import` sends a file in chunks.
An answer of 200 says how many were imported (durable in the log) and why each other row was
refused; with `all_or_nothing`, a single refused row refuses the whole request and nothing
changes.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.audience.importing import ImportCheck, Rejected, identify
from mailpulse.store import LogUnavailable
from mailpulse.types import Event

MAX_ROWS = 10_000
AppendFn = Callable[[Sequence[Event]], Awaitable[list[Event]]]


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contacts: list[dict[str, Any]] = Field(max_length=MAX_ROWS)
    # The row number of the first contact, so that reasons name the file's lines.
    first_row: int = Field(default=1, ge=1)
    all_or_nothing: bool = False


class RejectedOut(BaseModel):
    row: int
    kind: str
    reason: str


class ImportOut(BaseModel):
    imported: int
    rejected: list[RejectedOut]


def message_id(user_id: str, traits: dict[str, Any]) -> str:
    """The same row imported again (a retried request) is the same event: the log drops it."""
    body = msgspec.json.encode([user_id, traits], order="sorted")
    return f"mp-import-{hashlib.sha256(body).hexdigest()[:32]}"


def contacts_import_router(append: AppendFn) -> APIRouter:
    router = APIRouter(
        prefix="/admin/contacts", tags=["admin"], dependencies=[Depends(require_admin)]
    )
    unavailable = {503: ERRORS[400] | {"description": "The log is unavailable; nothing changed."}}

    @router.post("/import", response_model=ImportOut, responses={**ERRORS, **unavailable})
    async def import_contacts(body: ImportIn) -> ImportOut:
        check, now = ImportCheck(), time.time()
        events: list[Event] = []
        rejected: list[Rejected] = []
        for offset, fields in enumerate(body.contacts):
            outcome = check.contact(body.first_row + offset, fields)
            if isinstance(outcome, Rejected):
                rejected.append(outcome)
            else:
                user_id, traits = outcome
                events.append(identify(user_id, traits, message_id(user_id, traits), now))
        if rejected and body.all_or_nothing:
            events = []
        elif events:
            try:
                await append(events)
            except LogUnavailable as exc:
                raise HTTPException(503, f"the event log is unavailable: {exc}") from exc
        return ImportOut(
            imported=len(events),
            rejected=[RejectedOut(row=r.row, kind=r.kind, reason=r.reason) for r in rejected],
        )

    return router
