"""The keys a node knows, in memory: what the tracking API's hot path and the admin API look a
presented key up in, a hash and a dict look-up, never a store read.

The project's keys (mailpulse.toml) are fixed at start; scoped keys come from the access store
and are reloaded when its `keys_version` changes: at once on the node that added or revoked
one, and within REFRESH_EVERY seconds on every other node sharing the store (scale-out).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time

from mailpulse.access.interface import AccessStore
from mailpulse.access.keys import ApiKey, Principal, Scope, digest_of, new_key, principal_of

log = logging.getLogger("mailpulse.access")

# Seconds between looks at the store: how long a key revoked on another node still works here.
REFRESH_EVERY = 1.0


class ProjectKeys:
    """The keys of mailpulse.toml's [project]: write keys, server write keys, the admin key."""

    def __init__(self, write_keys: list[str], server_write_keys: list[str], admin_key: str) -> None:
        self.principals: dict[bytes, Principal] = {}
        for key in write_keys:
            self.principals[digest_of(key)] = Principal(
                scope=Scope.WRITE, label="project write key"
            )
        for key in server_write_keys:
            self.principals[digest_of(key)] = Principal(
                scope=Scope.WRITE, label="project server write key", server=True
            )
        if admin_key:
            self.principals[digest_of(admin_key)] = Principal(
                scope=Scope.ADMIN, label="project admin key"
            )
        self.admin_key = bool(admin_key)


class KeyRing:
    def __init__(self, store: AccessStore, project: ProjectKeys) -> None:
        self._store = store
        self._project = project
        # Digest → (the digest, who): the project's keys, then the scoped keys, revoked too
        # (a revoked key is refused as such, not as unknown).
        self._known: dict[bytes, tuple[bytes, Principal]] = {}
        # Keys presented and found, as presented: the next request with one costs a dict
        # look-up, not a hash. Only keys in force get here (so its size is bounded by theirs),
        # and it is emptied whenever the keys change. A look-up compares a key's string only
        # when its 64-bit hash (keyed per process) is equal, so a guess learns nothing from it.
        self._seen: dict[str, Principal] = {}
        self._version: int | None = None
        self._readers = 0  # scoped keys that may use the admin API
        self._install([])

    def find(self, key: str | None) -> Principal | None:
        """Who a presented key is, or None for no key or an unknown one."""
        if not key:
            return None
        seen = self._seen.get(key)
        if seen is not None:
            return seen
        found = self.find_digest(digest_of(key))
        if found is not None and not found.revoked:
            self._seen[key] = found
        return found

    def find_digest(self, digest: bytes) -> Principal | None:
        """Who the key with this SHA-256 is (a dashboard session names its key so, never by
        the key itself), or None when no key of the project or the store has it."""
        known = self._known.get(digest)
        if known is None or not hmac.compare_digest(known[0], digest):
            return None
        return known[1]

    @property
    def admin_api_enabled(self) -> bool:
        return self._project.admin_key or self._readers > 0

    async def refresh(self) -> None:
        """Reload the scoped keys if any was added or revoked since the last look."""
        version = await self._store.keys_version()
        if version != self._version:
            self._install(await self._store.keys())
            self._version = version

    async def run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            try:
                await self.refresh()
            except Exception:
                # The keys known stay in force; the next look tries again.
                log.warning("cannot reload the API keys; keeping those known", exc_info=True)

    async def create(self, scope: Scope, name: str) -> tuple[str, ApiKey]:
        key, record = new_key(scope, name, time.time())
        await self._store.add_key(record)
        await self.refresh()
        return key, record

    async def listed(self) -> list[ApiKey]:
        return await self._store.keys()

    async def revoke(self, key_id: str) -> ApiKey | None:
        revoked = await self._store.revoke_key(key_id, time.time())
        await self.refresh()
        return revoked

    def _install(self, keys: list[ApiKey]) -> None:
        known: dict[bytes, tuple[bytes, Principal]] = {}
        for key in keys:
            principal = principal_of(key)
            if key.revoked_at is not None:
                principal = Principal(scope="", label=principal.label, key_id=key.id, revoked=True)
            known[key.digest] = (key.digest, principal)
        # The project's keys win over a scoped key of the same digest (there is none: 256
        # random bits each).
        known.update((d, (d, p)) for d, p in self._project.principals.items())
        self._known = known
        self._seen = {}
        self._readers = sum(
            1 for k in keys if k.revoked_at is None and k.scope in (Scope.READ, Scope.ADMIN)
        )
