"""`GET /admin/lists`: the lists contacts were put in (mailpulse.audience.lists), each with how
many contacts it holds now: what a campaign to it reaches, give or take those without an
address."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.audience.lists import lists_in
from mailpulse.store import StateStore


class ListOut(BaseModel):
    id: str
    members: int


class ListsOut(BaseModel):
    lists: list[ListOut]


def lists_router(state: StateStore) -> APIRouter:
    router = APIRouter(prefix="/admin/lists", tags=["admin"], dependencies=[Depends(require_admin)])

    @router.get("", response_model=ListsOut, responses=ERRORS)
    async def list_lists() -> ListsOut:
        found = lists_in(await state.segment_members())
        return ListsOut(lists=[ListOut(id=name, members=found[name]) for name in sorted(found)])

    return router
