"""Who may call what: write keys for ingestion, the admin key for the admin API."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from mailpulse.events import write_key_from_basic


def write_key_problem(
    allowed: frozenset[str], header: str | None, body_key: str | None
) -> str | None:
    """Why a tracking call may not write, or None. Segment's way: HTTP Basic with the key as
    user name, or `writeKey` in the body."""
    key = write_key_from_basic(header) or body_key
    if key is None:
        return (
            "no write key: send it as the HTTP Basic user name (empty password) "
            "or as writeKey in the body"
        )
    if not any(hmac.compare_digest(key.encode(), k.encode()) for k in allowed):
        return "unknown write key"
    return None


def require_admin(request: Request) -> None:
    """`Authorization: Bearer <admin key>`; the admin API is off when no key is configured."""
    admin_key: str = request.app.state.admin_key
    if not admin_key:
        raise HTTPException(403, "the admin API is disabled: set [project] admin_key")
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), admin_key.encode()
    ):
        raise HTTPException(401, "admin API: send Authorization: Bearer <admin key>")
