"""The messages to an address from the outbox's index (`StateStore.outbox_for_address`), in
both stores: in any case, newest first, bounded; an erased contact's messages are no longer
found by their address; a SQLite state file from before the index is upgraded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from mailpulse.store import FoldCommit, OutboxRow, OutboxStatus
from mailpulse.store.sqlite import SqliteStateStore
from mailpulse.types import Contact, SendIntent
from tests.store.conftest import StateFactory


def row(key: str, contact: str, email: str, at: float) -> OutboxRow:
    return OutboxRow(
        intent=SendIntent(
            key=key, contact_id=contact, email=email, template="t", context={}, created_at=at
        ),
        status=OutboxStatus.QUEUED,
        next_attempt_at=at,
        updated_at=at,
    )


async def test_messages_to_an_address_newest_first(open_state: StateFactory) -> None:
    state = await open_state()
    await state.commit(
        FoldCommit(
            checkpoint=1,
            contacts=[Contact(id="u1"), Contact(id="u2")],
            intents=[
                row("k1", "u1", "Ann@Example.com", 10.0),
                row("k2", "u1", "ann@example.com", 20.0),
                row("k3", "u2", "bob@example.com", 15.0),
            ],
        )
    )
    found = await state.outbox_for_address(" ANN@example.COM ", 10)
    assert [r.intent.key for r in found] == ["k2", "k1"]
    assert [r.intent.key for r in await state.outbox_for_address("ann@example.com", 1)] == ["k2"]
    assert await state.outbox_for_address("nobody@example.com", 10) == []
    assert await state.outbox_for_address("", 10) == []

    await state.commit(
        FoldCommit(checkpoint=2, contacts=[Contact(id="u1", erased_at=30.0)], erasures={"u1": 30.0})
    )
    assert await state.outbox_for_address("ann@example.com", 10) == []
    assert [r.intent.key for r in await state.outbox_for_address("bob@example.com", 10)] == ["k3"]


async def test_a_state_file_from_before_the_index_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE outbox (key TEXT PRIMARY KEY, contact_id TEXT NOT NULL, "
            "status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, "
            "next_attempt_at REAL NOT NULL, message_id TEXT NOT NULL DEFAULT '', "
            "last_code INTEGER NOT NULL DEFAULT 0, last_text TEXT NOT NULL DEFAULT '', "
            "created_at REAL NOT NULL, updated_at REAL NOT NULL, intent BLOB NOT NULL"
            ") WITHOUT ROWID"
        )
    state = SqliteStateStore(path)
    await state.open()
    try:
        await state.commit(FoldCommit(checkpoint=1, intents=[row("k1", "u1", "a@b.test", 1.0)]))
        assert [r.intent.key for r in await state.outbox_for_address("a@b.test", 10)] == ["k1"]
    finally:
        await state.close()
