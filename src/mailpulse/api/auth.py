"""Who may call what. The tracking API (/v1) takes a key of scope write or admin (HTTP Basic
user name, Segment's way, or `writeKey` in the body); the admin API (/admin) takes
`Authorization: Bearer <key>`, of scope read for GET and HEAD, of scope admin for anything
else. The project's keys in mailpulse.toml count as write keys (`write_keys`,
`server_write_keys`) and as an admin key (`admin_key`); scoped keys are made over the admin
API (see mailpulse.access). A refusal names the scope that was needed."""

from __future__ import annotations

from fastapi import HTTPException, Request

from mailpulse.access import KeyRing, Principal
from mailpulse.events import write_key_from_basic

# Where the admin gate (mailpulse.api.admin_gate) leaves who asked, in the ASGI scope.
PRINCIPAL = "mailpulse.principal"
READ_METHODS = frozenset(("GET", "HEAD"))


class AccessRefused(Exception):
    """`principal`: who was refused, when the key was known (a revoked one, a wrong scope)."""

    def __init__(self, status: int, error: str, principal: Principal | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.principal = status, error, principal


def _refused_key(found: Principal) -> AccessRefused:
    return AccessRefused(401, f"{found.label} was revoked", found)


def ingest_principal(keys: KeyRing, authorization: str | None, body_key: str | None) -> Principal:
    """Who may write a tracking call, or AccessRefused saying why not."""
    key = write_key_from_basic(authorization) or body_key
    if key is None:
        raise AccessRefused(
            401,
            "no write key: send it as the HTTP Basic user name (empty password) "
            "or as writeKey in the body",
        )
    found = keys.find(key)
    if found is None:
        raise AccessRefused(401, "unknown write key")
    if found.revoked:
        raise _refused_key(found)
    if not found.may_ingest():
        raise AccessRefused(
            403, f"{found.label} has scope {found.scope}: /v1 takes a key of scope write or admin"
        )
    return found


def admin_principal(keys: KeyRing, authorization: str | None, method: str) -> Principal:
    """Who may make an admin request, or AccessRefused saying why not."""
    if not keys.admin_api_enabled:
        raise AccessRefused(403, "the admin API is disabled: set [project] admin_key")
    scheme, _, token = (authorization or "").partition(" ")
    found = keys.find(token.strip()) if scheme.lower() == "bearer" else None
    if found is None:
        raise AccessRefused(401, "admin API: send Authorization: Bearer <admin key>")
    if found.revoked:
        raise _refused_key(found)
    if method in READ_METHODS:
        if not found.may_read():
            raise AccessRefused(
                403,
                f"{found.label} has scope {found.scope}: {method} on /admin needs a key of "
                "scope read or admin",
                found,
            )
    elif found.scope != "admin":
        raise AccessRefused(
            403,
            f"{found.label} has scope {found.scope}: {method} on /admin needs scope admin",
            found,
        )
    return found


def require_admin(request: Request) -> Principal:
    """The dependency of admin routes: who the admin gate let in, or, for a route outside
    /admin, who the request's key is (refused as the gate would)."""
    principal: Principal | None = request.scope.get(PRINCIPAL)
    if principal is None:
        try:
            principal = admin_principal(
                request.app.state.keys, request.headers.get("authorization"), request.method
            )
        except AccessRefused as refusal:
            raise HTTPException(refusal.status, refusal.error) from refusal
        request.scope[PRINCIPAL] = principal
    return principal
