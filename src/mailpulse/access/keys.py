"""Scoped API keys: what a key may do, how one is made, and how a presented one is known.

A key is 256 random bits, shown once when it is made; only its SHA-256 is stored, with a short
prefix of it that names the key in lists and in the audit log without letting anyone use it.
A presented key is hashed and its digest looked up: the digest of a guess says nothing about
the stored digests' bytes, so the look-up leaks nothing an attacker can steer (the digests are
compared with `hmac.compare_digest` all the same). A node remembers the keys it found, as
presented, so that the next request with one costs a dict look-up (see mailpulse.access.ring).
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

import msgspec

KEY_PREFIX = "mpk_"
# Characters of a key kept in the clear to name it: "mpk_" and 8 of its 43 random ones.
SHOWN = len(KEY_PREFIX) + 8
MAX_NAME = 200


class Scope(StrEnum):
    WRITE = "write"  # the tracking API (/v1/*) only
    READ = "read"  # GET on the admin API
    ADMIN = "admin"  # everything


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key as stored: never the key itself."""

    id: str
    prefix: str  # the key's first characters, e.g. "mpk_Q2x9fA1b"
    scope: str
    name: str = ""
    created_at: float
    revoked_at: float | None = None
    digest: bytes  # SHA-256 of the key


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who made a request: a scoped key, or one of the project's keys in mailpulse.toml."""

    scope: str
    label: str  # how the audit log names it: "key mpk_Q2x9fA1b" or "project admin key"
    key_id: str = ""  # a scoped key's id; "" for the project's keys
    # A project server write key: may also update catalogs (see mailpulse.api.catalog_events).
    server: bool = False
    revoked: bool = False  # a scoped key revoked: refused, as such

    def may_ingest(self) -> bool:
        return not self.revoked and self.scope in (Scope.WRITE, Scope.ADMIN)

    def may_read(self) -> bool:
        return not self.revoked and self.scope in (Scope.READ, Scope.ADMIN)


def digest_of(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def new_key(scope: Scope, name: str, now: float) -> tuple[str, ApiKey]:
    """A fresh key and its record; the key itself is in the answer to its creation only."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        id=secrets.token_hex(8),
        prefix=key[:SHOWN],
        scope=scope.value,
        name=name,
        created_at=now,
        digest=digest_of(key),
    )
    return key, record


def principal_of(key: ApiKey) -> Principal:
    return Principal(scope=key.scope, label=f"key {key.prefix}", key_id=key.id)
