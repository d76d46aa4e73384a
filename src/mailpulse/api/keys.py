"""Scoped API keys over the admin API (see mailpulse.access):

POST   /admin/keys        make one: {"scope": "write"|"read"|"admin", "name": "..."}; the
                          answer holds the key itself, shown this once
GET    /admin/keys        every key (revoked ones too), without the keys
DELETE /admin/keys/{id}   revoke one: refused from then on, on every node within
                          mailpulse.access.REFRESH_EVERY seconds
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from mailpulse.access import ApiKey, KeyRing, Scope
from mailpulse.access.keys import MAX_NAME
from mailpulse.api.admin_gate import note_audit
from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Scope
    name: str = Field(default="", max_length=MAX_NAME, pattern=r"^[^\x00-\x1f]*$")


class KeyOut(BaseModel):
    id: str
    prefix: str  # the key's first characters: enough to tell which key a string is
    scope: str
    name: str
    created_at: float
    revoked_at: float | None


class NewKeyOut(KeyOut):
    key: str  # shown in this answer only: only its SHA-256 is kept


class KeysOut(BaseModel):
    keys: list[KeyOut]


def _out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        prefix=key.prefix,
        scope=key.scope,
        name=key.name,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


def keys_router(keys: KeyRing) -> APIRouter:
    router = APIRouter(prefix="/admin/keys", tags=["admin"], dependencies=[Depends(require_admin)])
    not_found = {404: ERRORS[400] | {"description": "No such key."}}

    @router.post("", status_code=201, response_model=NewKeyOut, responses=ERRORS)
    async def create_key(made: KeyIn, request: Request) -> NewKeyOut:
        """A new key of a scope: write (the tracking API only), read (GET on the admin API) or
        admin (everything). The key is in this answer and nowhere else."""
        key, record = await keys.create(made.scope, made.name.strip())
        note_audit(
            request,
            f"made a {record.scope} key {record.prefix} named {record.name!r}",
            key_id=record.id,
        )
        return NewKeyOut(**_out(record).model_dump(), key=key)

    @router.get("", response_model=KeysOut, responses=ERRORS)
    async def list_keys() -> KeysOut:
        return KeysOut(keys=[_out(k) for k in await keys.listed()])

    @router.delete("/{key_id}", response_model=KeyOut, responses={**ERRORS, **not_found})
    async def revoke_key(key_id: str, request: Request) -> KeyOut:
        """Revoke a key (one revoked already stays as it was)."""
        revoked = await keys.revoke(key_id)
        if revoked is None:
            raise HTTPException(404, f"no key {key_id!r}")
        note_audit(request, f"revoked the {revoked.scope} key {revoked.prefix}", key_id=key_id)
        return _out(revoked)

    return router
