"""The access seam: scoped API keys and the audit log, in SQLite (embedded) or PostgreSQL
(scale-out).

Neither is derived state: nothing in the event log rebuilds them, so a write is durable before
it returns, in either backend.
"""

from __future__ import annotations

from typing import Protocol

from mailpulse.access.audit import AuditEntry
from mailpulse.access.keys import ApiKey


class AccessUnavailable(Exception):
    """The access store cannot be reached now; nothing was changed."""


class AccessStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def add_key(self, key: ApiKey) -> None: ...

    async def revoke_key(self, key_id: str, at: float) -> ApiKey | None:
        """Revoke a key (one revoked already keeps its first revocation); the key as it now
        stands, or None when there is no such key."""
        ...

    async def keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""
        ...

    async def keys_version(self) -> int:
        """A number that grows with every key added or revoked (keys are never deleted and a
        revocation is final, so: keys plus revoked keys). A node reloads its keys when it
        changes."""
        ...

    async def record(self, entry: AuditEntry) -> int:
        """Keep an audit entry; its id."""
        ...

    async def audit(
        self, *, since: float | None, until: float | None, before: int | None, limit: int
    ) -> list[AuditEntry]:
        """Entries kept at `since` or later and before `until`, with ids below `before`,
        newest first."""
        ...
