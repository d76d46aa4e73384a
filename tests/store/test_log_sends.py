"""One message's events from the log's index of send keys (`EventLog.for_send`), in both
stores: only mailpulse's own lifecycle events of that send, in append order, never a
customer's event that happens to carry a property named key, nor a forwarded copy."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.store.sqlite import SqliteEventLog
from mailpulse.types import Event, SendIntent
from tests.store.conftest import LogFactory


def intent(key: str, contact: str = "c1") -> SendIntent:
    return SendIntent(key=key, contact_id=contact, email="a@example.com", template="t", context={})


def customer(message_id: str, key: str) -> Event:
    return Event(
        type="track",
        message_id=message_id,
        contact_key="c1",
        user_id="c1",
        event="Email Sent",  # a customer may name an event as mailpulse does
        properties={"key": key},
        context={"library": {"name": "mailpulse"}},
        received_at=1.0,
    )


async def test_a_sends_events_in_order_and_nothing_else(open_log: LogFactory) -> None:
    log = await open_log()
    one, other = intent("journey:welcome:c1:1"), intent("campaign:spring:c1")
    queued = lifecycle_event(Lifecycle.QUEUED, one, 1.0)
    await log.append(
        [
            queued,
            lifecycle_event(Lifecycle.QUEUED, other, 1.0),
            customer("mine", one.key),
            msgspec.structs.replace(queued, message_id="copy", forwarded=True),
            lifecycle_event(Lifecycle.DEFERRED, one, 2.0, attempt=1),
        ]
    )
    await log.append([lifecycle_event(Lifecycle.SENT, one, 3.0, attempt=2)])
    found = await log.for_send(one.key, 100)
    assert [e.event for e in found] == ["Email Queued", "Email Deferred", "Email Sent"]
    assert [e.offset for e in found] == sorted(e.offset for e in found)
    assert [e.event for e in await log.for_send(one.key, 2)] == ["Email Queued", "Email Deferred"]
    assert [e.event for e in await log.for_send(other.key, 100)] == ["Email Queued"]
    assert await log.for_send("campaign:none:c1", 100) == []


async def test_a_log_file_from_before_the_index_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            'CREATE TABLE events ("offset" INTEGER PRIMARY KEY, message_id TEXT NOT NULL, '
            "contact_key TEXT NOT NULL, type TEXT NOT NULL, received_at REAL NOT NULL, "
            "body BLOB NOT NULL)"
        )
        conn.execute("INSERT INTO events VALUES (1, 'old', 'c1', 'track', 1.0, '{}')")
    log = SqliteEventLog(path)
    await log.open()
    try:
        sent = lifecycle_event(Lifecycle.SENT, intent("k"), 2.0)
        [fresh] = await log.append([sent])
        assert fresh.offset == 2
        assert [e.message_id for e in await log.for_send("k", 10)] == [sent.message_id]
    finally:
        await log.close()
    again = SqliteEventLog(path)  # opened again: upgraded already, nothing to do
    await again.open()
    try:
        assert len(await again.for_send("k", 10)) == 1
    finally:
        await again.close()
