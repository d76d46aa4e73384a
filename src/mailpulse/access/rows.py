"""Rows to values and back, shared by both backends (same columns, same order)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from mailpulse.access.audit import AuditEntry
from mailpulse.access.keys import ApiKey


def key_params(key: ApiKey) -> tuple[Any, ...]:
    """Parameters of add-key: id, digest, prefix, scope, name, created_at, revoked_at."""
    return (key.id, key.digest, key.prefix, key.scope, key.name, key.created_at, key.revoked_at)


def key_from_row(row: Sequence[Any]) -> ApiKey:
    key_id, digest, prefix, scope, name, created_at, revoked_at = row
    return ApiKey(
        id=key_id,
        digest=bytes(digest),
        prefix=prefix,
        scope=scope,
        name=name,
        created_at=created_at,
        revoked_at=revoked_at,
    )


def entry_params(e: AuditEntry) -> tuple[Any, ...]:
    """Parameters of record: every column but the id, in order."""
    target = orjson.dumps(e.target).decode()
    return (
        e.at,
        e.actor,
        e.key_id,
        e.scope,
        e.method,
        e.path,
        target,
        e.summary,
        e.status,
        e.outcome,
        e.ip,
    )


def entry_from_row(row: Sequence[Any]) -> AuditEntry:
    entry_id, at, actor, key_id, scope, method, path, target, summary, status, outcome, ip = row
    return AuditEntry(
        id=entry_id,
        at=at,
        actor=actor,
        key_id=key_id,
        scope=scope,
        method=method,
        path=path,
        target=orjson.loads(target),
        summary=summary,
        status=status,
        outcome=outcome,
        ip=ip,
    )
