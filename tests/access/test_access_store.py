"""Keys and the audit log on both stores: kept hashed, revoked once and for good, versioned so
that other nodes notice, durable across a reopen; audit entries filtered by time and paged
newest first."""

from __future__ import annotations

from mailpulse.access import ApiKey, AuditEntry, Scope
from mailpulse.access.keys import KEY_PREFIX, SHOWN, digest_of, new_key
from tests.access.conftest import AccessFactory


def entry(at: float, method: str = "POST", status: int = 201) -> AuditEntry:
    return AuditEntry(
        at=at,
        actor="project admin key",
        scope="admin",
        method=method,
        path="/admin/keys",
        target={"key_id": "k1"},
        summary="created a read key",
        status=status,
        outcome="done" if status < 400 else "refused",
        ip="127.0.0.1",
    )


def test_a_new_key_is_random_and_only_its_digest_and_prefix_are_kept() -> None:
    key, record = new_key(Scope.READ, "dashboards", 10.0)
    other, _ = new_key(Scope.READ, "dashboards", 10.0)
    assert key != other and key.startswith(KEY_PREFIX) and len(key) >= 40
    assert record.prefix == key[:SHOWN] and record.digest == digest_of(key)
    assert key not in repr(record) and record.scope == "read" and record.revoked_at is None


async def test_keys_are_kept_revoked_once_and_counted(open_access: AccessFactory) -> None:
    store = await open_access()
    assert await store.keys() == [] and await store.keys_version() == 0
    _, first = new_key(Scope.WRITE, "web", 1.0)
    _, second = new_key(Scope.ADMIN, "ops", 2.0)
    await store.add_key(first)
    await store.add_key(second)
    assert await store.keys() == [first, second]
    assert await store.keys_version() == 2

    revoked = await store.revoke_key(first.id, 5.0)
    assert isinstance(revoked, ApiKey) and revoked.revoked_at == 5.0
    assert await store.keys_version() == 3
    # Revoked again: the first revocation stands, and nothing changes.
    again = await store.revoke_key(first.id, 9.0)
    assert again is not None and again.revoked_at == 5.0
    assert await store.keys_version() == 3
    assert await store.revoke_key("no-such-key", 9.0) is None

    # Another node (or a restart) sees the same.
    reopened = await open_access()
    assert [k.revoked_at for k in await reopened.keys()] == [5.0, None]
    assert await reopened.keys_version() == 3


async def test_audit_entries_page_newest_first_within_a_time_range(
    open_access: AccessFactory,
) -> None:
    store = await open_access()
    ids = [await store.record(entry(float(at))) for at in range(10, 20)]
    assert ids == sorted(ids) and len(set(ids)) == 10

    page = await store.audit(since=None, until=None, before=None, limit=4)
    assert [e.at for e in page] == [19.0, 18.0, 17.0, 16.0]
    assert page[0].target == {"key_id": "k1"} and page[0].summary == "created a read key"
    assert page[0].id == ids[-1]
    rest = await store.audit(since=None, until=None, before=page[-1].id, limit=100)
    assert [e.at for e in rest] == [15.0, 14.0, 13.0, 12.0, 11.0, 10.0]

    window = await store.audit(since=12.0, until=15.0, before=None, limit=100)
    assert [e.at for e in window] == [14.0, 13.0, 12.0]
    assert await store.audit(since=30.0, until=None, before=None, limit=10) == []

    reopened = await open_access()
    kept = await reopened.audit(since=None, until=None, before=None, limit=1)
    assert kept == [page[0]]
