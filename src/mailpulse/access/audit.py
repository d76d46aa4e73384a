"""The audit log: one entry per admin action (and per attempt refused), kept durably.

An entry says who (a key's label, id and scope, or "project admin key", or "unauthenticated"),
what (the method, the route, the ids it names and a summary of the change, never a secret nor
an address: addresses are kept as their SHA-256, the suppression list's key, so that an
erasure leaves none behind), when, from which address, and how it ended.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Outcome(StrEnum):
    DONE = "done"  # answered 2xx or 3xx
    REFUSED = "refused"  # 4xx: nothing changed
    FAILED = "failed"  # 5xx


def outcome_of(status: int) -> Outcome:
    if status < 400:
        return Outcome.DONE
    return Outcome.REFUSED if status < 500 else Outcome.FAILED


class AuditEntry(msgspec.Struct, kw_only=True):
    at: float
    actor: str
    key_id: str = ""
    scope: str = ""
    method: str
    path: str  # the route ("/admin/campaigns/{campaign_id}/pause"), else the path asked
    target: dict[str, str] = msgspec.field(default_factory=dict)
    summary: str = ""
    status: int
    outcome: str
    ip: str = ""
    id: int = 0  # set by the store: the order entries were kept in
