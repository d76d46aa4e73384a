"""`POST /admin/contacts/import`: contacts upserted in bulk, each row checked first.

The body holds up to 10,000 rows (`contacts`), as `mailpulse import` sends a file in chunks.
An answer of 200 says how many were imported (durable in the log) and why each other row was
refused; with `all_or_nothing`, a single refused row refuses the whole request and nothing
changes. With `list`, the contacts imported join that list, which a campaign can mail. An
imported row whose address has suppression entries is imported all the same, and
reported as `suppressed` with its entries: the contact will not be mailed (or not for those
topics).
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
from mailpulse.audience.lists import LIST_NAME
from mailpulse.policy import SuppressionIndex, address_hash, describe
from mailpulse.store import LogUnavailable, StateStore
from mailpulse.types import Event

MAX_ROWS = 10_000
AppendFn = Callable[[Sequence[Event]], Awaitable[list[Event]]]


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contacts: list[dict[str, Any]] = Field(max_length=MAX_ROWS)
    # The row number of the first contact, so that reasons name the file's lines.
    first_row: int = Field(default=1, ge=1)
    all_or_nothing: bool = False
    # A list the imported contacts join, which a campaign can then mail ({"list": ...}).
    into: str | None = Field(default=None, alias="list", pattern=f"^{LIST_NAME.pattern}$")


class RowOut(BaseModel):
    row: int
    kind: str
    reason: str


class ImportOut(BaseModel):
    imported: int
    rejected: list[RowOut]
    # Imported, but on the suppression list: kind "suppressed", the reason names the entries.
    suppressed: list[RowOut] = []


def message_id(user_id: str, traits: dict[str, Any], into: str | None) -> str:
    """The same row imported again (a retried request) is the same event: the log drops it.
    Imported into another list, it is another."""
    body = msgspec.json.encode([user_id, traits, into], order="sorted")
    return f"mp-import-{hashlib.sha256(body).hexdigest()[:32]}"


async def _suppressed(state: StateStore, emails: dict[int, str]) -> list[RowOut]:
    """The rows (by number) whose address has suppression entries: one look-up for them all."""
    index = SuppressionIndex(
        await state.suppressions_for(sorted(set(map(address_hash, emails.values()))))
    )
    report = []
    for row, email in emails.items():
        if found := sorted(index.of(email), key=lambda e: e.topic):
            report.append(
                RowOut(row=row, kind="suppressed", reason="; ".join(map(describe, found)))
            )
    return report


def contacts_import_router(append: AppendFn, state: StateStore) -> APIRouter:
    router = APIRouter(
        prefix="/admin/contacts", tags=["admin"], dependencies=[Depends(require_admin)]
    )
    unavailable = {503: ERRORS[400] | {"description": "The log is unavailable; nothing changed."}}

    @router.post("/import", response_model=ImportOut, responses={**ERRORS, **unavailable})
    async def import_contacts(body: ImportIn) -> ImportOut:
        check, now = ImportCheck(), time.time()
        events: list[Event] = []
        rejected: list[Rejected] = []
        emails: dict[int, str] = {}  # row → address, of the rows imported
        for offset, fields in enumerate(body.contacts):
            row = body.first_row + offset
            outcome = check.contact(row, fields)
            if isinstance(outcome, Rejected):
                rejected.append(outcome)
            else:
                user_id, traits = outcome
                key = message_id(user_id, traits, body.into)
                events.append(identify(user_id, traits, key, now, body.into))
                if "email" in traits:
                    emails[row] = traits["email"]
        if rejected and body.all_or_nothing:
            events, emails = [], {}
        elif events:
            try:
                await append(events)
            except LogUnavailable as exc:
                raise HTTPException(503, f"the event log is unavailable: {exc}") from exc
        return ImportOut(
            imported=len(events),
            rejected=[RowOut(row=r.row, kind=r.kind, reason=r.reason) for r in rejected],
            suppressed=await _suppressed(state, emails) if emails else [],
        )

    return router
