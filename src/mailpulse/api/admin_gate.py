"""The layer in front of /admin: who asks (refused with 401 or 403, naming the scope needed,
before any route runs), and an audit entry for every request that may change something, and
for the reads a route asks to have kept (a contact's export). The entry is kept before the
answer goes out, so whoever sees an answer knows it is on record; one that cannot be kept is
logged and counted, and the answer goes out all the same (what it answers is done).

Entries name no secret and no address: path parameters that look like an address are kept as
the address's SHA-256 (the suppression list's key), and a body is summed up by its type, its
size and, for a JSON object, the names of its fields. A route says more with `note_audit`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request

from mailpulse.access import AccessStore, AuditEntry, KeyRing, Principal, outcome_of
from mailpulse.api.asgi import answer_json
from mailpulse.api.auth import PRINCIPAL, READ_METHODS, AccessRefused, admin_principal
from mailpulse.observe import Metrics
from mailpulse.observe.dashboard_session import DashboardSessions, SessionRefused, cookie_from
from mailpulse.policy.suppression import address_hash, canonical_address

log = logging.getLogger("mailpulse.audit")

_NOTE = "mailpulse.audit"
# Of a body, this much is read for its summary (the route still gets all of it).
_SUMMED_UP = 64 * 1024
_PREFIX = "/admin"


@dataclass
class _Note:
    summary: str = ""
    target: dict[str, str] = field(default_factory=dict)


def note_audit(request: Request, summary: str, **target: str) -> None:
    """What a route did, for its audit entry; a read so noted is kept too."""
    request.scope[_NOTE] = _Note(summary, {k: redact(v) for k, v in target.items()})


def redact(value: str) -> str:
    """A value as the audit log keeps it: an address as its SHA-256, anything else as it is."""
    if "@" not in value:
        return value
    address = canonical_address(value)[0] or value.strip().lower()
    return f"sha256:{address_hash(address)}"


def _summary(content_type: str, body: bytes, size: int) -> str:
    if not size:
        return ""
    kind = content_type.split(";")[0].strip() or "a"
    said = f"{kind} body of {size:,} bytes"
    if size <= _SUMMED_UP and kind == "application/json":
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return said
        if isinstance(parsed, dict):
            return f"{said}: {', '.join(sorted(map(redact, map(str, parsed))))}"
    return said


class AdminGate:
    def __init__(
        self,
        app: Any,
        keys: KeyRing,
        audit: AccessStore,
        metrics: Metrics,
        sessions: DashboardSessions | None = None,
    ) -> None:
        """`sessions`: the dashboard's, whose cookie stands in for the key on reads (GET and
        HEAD) that come without an Authorization header: what the dashboard's page fetches."""
        self._app, self._keys, self._audit, self._metrics = app, keys, audit, metrics
        self._sessions = sessions

    def _session_principal(self, headers: dict[bytes, bytes]) -> Principal:
        assert self._sessions is not None
        cookie = cookie_from(headers.get(b"cookie", b"").decode("latin-1"))
        if cookie is None:
            # Said as without a session: a client of the API learns what to send.
            return admin_principal(self._keys, None, "GET")
        try:
            return self._sessions.principal(cookie)
        except SessionRefused as refusal:
            raise AccessRefused(401, f"dashboard session: {refusal}") from None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == _PREFIX or path.startswith(_PREFIX + "/")):
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        try:
            if not authorization and method in READ_METHODS and self._sessions is not None:
                principal = self._session_principal(headers)
            else:
                principal = admin_principal(self._keys, authorization, method)
        except AccessRefused as refusal:
            if method not in READ_METHODS:
                await self._keep(scope, refusal.principal, refusal.status, refusal.error)
            await answer_json(send, refusal.status, {"error": refusal.error, "where": None})
            return
        scope[PRINCIPAL] = principal
        audited = method not in READ_METHODS
        seen = bytearray()
        size = 0

        async def reading() -> dict[str, Any]:
            nonlocal size
            message = await receive()
            if audited and message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                seen.extend(chunk[: max(0, _SUMMED_UP + 1 - len(seen))])
            return message

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and (audited or _NOTE in scope):
                content_type = headers.get(b"content-type", b"").decode("latin-1")
                await self._keep(
                    scope, principal, message["status"], _summary(content_type, bytes(seen), size)
                )
            await send(message)

        await self._app(scope, reading, sending)

    async def _keep(
        self, scope: dict[str, Any], principal: Principal | None, status: int, summed_up: str
    ) -> None:
        note: _Note = scope.get(_NOTE) or _Note()
        route = scope.get("route")
        target = {k: redact(str(v)) for k, v in scope.get("path_params", {}).items()}
        entry = AuditEntry(
            at=time.time(),
            actor=principal.label if principal is not None else "unauthenticated",
            key_id=principal.key_id if principal is not None else "",
            scope=principal.scope if principal is not None else "",
            method=scope["method"],
            path=getattr(route, "path", None) or "/".join(map(redact, scope["path"].split("/"))),
            target={**target, **note.target},
            summary=note.summary or summed_up,
            status=status,
            outcome=outcome_of(status),
            ip=(scope.get("client") or ("",))[0],
        )
        try:
            await self._audit.record(entry)
        except Exception:
            self._metrics.errors.labels("audit").inc()
            log.exception("audit entry not kept: %s", entry)
