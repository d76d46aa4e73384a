"""Who may call what: scoped API keys (stored hashed, known in memory through a `KeyRing`) and
the audit log of admin actions, in an `AccessStore` (SQLite embedded, PostgreSQL scale-out)."""

from mailpulse.access.audit import AuditEntry, Outcome, outcome_of
from mailpulse.access.interface import AccessStore, AccessUnavailable
from mailpulse.access.keys import ApiKey, Principal, Scope
from mailpulse.access.ring import REFRESH_EVERY, KeyRing, ProjectKeys
from mailpulse.access.sqlite import SqliteAccessStore

__all__ = [
    "REFRESH_EVERY",
    "AccessStore",
    "AccessUnavailable",
    "ApiKey",
    "AuditEntry",
    "KeyRing",
    "Outcome",
    "Principal",
    "ProjectKeys",
    "Scope",
    "SqliteAccessStore",
    "outcome_of",
]
