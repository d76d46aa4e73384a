"""The keys a node knows: the project's from mailpulse.toml, the scoped ones from the store,
reloaded at once where one is added or revoked and on the next look everywhere else (the
nodes of a scale-out deployment share the store)."""

from __future__ import annotations

import asyncio

from mailpulse.access import KeyRing, ProjectKeys, Scope
from tests.access.conftest import AccessFactory

PROJECT = ProjectKeys(["wk-1", "wk-2"], ["server-1"], "the-admin-key")


async def test_the_project_keys_are_known_without_the_store(open_access: AccessFactory) -> None:
    ring = KeyRing(await open_access(), PROJECT)
    writer, server, admin = ring.find("wk-2"), ring.find("server-1"), ring.find("the-admin-key")
    assert writer is not None and writer.scope == Scope.WRITE and not writer.server
    assert writer.label == "project write key" and writer.may_ingest() and not writer.may_read()
    assert server is not None and server.server and server.may_ingest()
    assert admin is not None and admin.label == "project admin key" and admin.may_read()
    for unknown in (None, "", "wk", "wk-1 ", "THE-ADMIN-KEY"):
        assert ring.find(unknown) is None
    assert ring.admin_api_enabled
    assert not KeyRing(await open_access(), ProjectKeys([], [], "")).admin_api_enabled


async def test_a_key_is_known_where_it_was_made_at_once_and_elsewhere_after_a_look(
    open_access: AccessFactory,
) -> None:
    here = KeyRing(await open_access(), ProjectKeys([], [], ""))
    there = KeyRing(await open_access(), ProjectKeys([], [], ""))
    await here.refresh()
    await there.refresh()
    key, record = await here.create(Scope.READ, "grafana")
    found = here.find(key)
    assert found is not None and found.key_id == record.id and found.scope == "read"
    assert found.label == f"key {record.prefix}" and here.admin_api_enabled
    assert there.find(key) is None and not there.admin_api_enabled
    await there.refresh()
    assert there.find(key) == found

    revoked = await here.revoke(record.id)
    assert revoked is not None and revoked.revoked_at is not None
    gone = here.find(key)
    assert gone is not None and gone.revoked and not gone.may_read() and not gone.may_ingest()
    assert not here.admin_api_enabled
    assert there.find(key) == found  # until its next look
    await there.refresh()
    assert there.find(key) == gone
    assert await here.revoke("no-such-key") is None


async def test_the_ring_looks_again_by_itself(open_access: AccessFactory) -> None:
    here = KeyRing(await open_access(), ProjectKeys([], [], ""))
    there = KeyRing(await open_access(), ProjectKeys([], [], ""))
    key, _ = await here.create(Scope.WRITE, "web")
    looking = asyncio.create_task(there.run())
    try:
        async with asyncio.timeout(10):
            while there.find(key) is None:  # noqa: ASYNC110 (the ring has no event to wait on)
                await asyncio.sleep(0.05)
    finally:
        looking.cancel()
    found = there.find(key)
    assert found is not None and found.may_ingest()
