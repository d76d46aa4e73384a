"""SQLite from the event loop: group commit, one failing call does not sink its group, and
the embedded store keeps one partition."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from mailpulse.store import FoldCommit, Handover
from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore
from mailpulse.store.sqlite.worker import SqliteFile
from tests.store.test_state_contract import intent, update

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"


@pytest.mark.parametrize("durable", [True, False])
async def test_a_failing_call_leaves_the_rest_of_its_group(tmp_path: Path, durable: bool) -> None:
    db = SqliteFile(tmp_path / "f.db", durable=durable, schema=SCHEMA, name="t")
    db.open()
    try:

        def put(k: str, v: int | None):
            return lambda c: c.execute("INSERT INTO t VALUES (?, ?)", (k, v)).rowcount

        results = await asyncio.gather(
            db.write(put("a", 1)),
            db.write(put("b", None)),  # NOT NULL: fails
            db.write(put("c", 3)),
            return_exceptions=True,
        )
        assert results[0] == 1 and results[2] == 1
        assert isinstance(results[1], sqlite3.IntegrityError)
        rows = db.read(lambda c: c.execute("SELECT k, v FROM t ORDER BY k").fetchall())
        assert rows == [("a", 1), ("c", 3)]
    finally:
        await db.close()


async def test_writes_of_one_turn_share_a_commit(tmp_path: Path) -> None:
    commits: list[bool] = []
    db = SqliteFile(
        tmp_path / "f.db", durable=True, schema=SCHEMA, name="t", on_commit=commits.append
    )
    db.open()
    try:
        await asyncio.gather(
            *(
                db.write(lambda c, n=n: c.execute("INSERT INTO t VALUES (?, ?)", (f"k{n}", n)))
                for n in range(100)
            )
        )
        assert db.read(lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 100
        assert len(commits) == 1 and commits == [True]
    finally:
        await db.close()


async def test_an_embedded_store_has_one_partition(tmp_path: Path) -> None:
    log, state = SqliteEventLog(tmp_path / "log.db"), SqliteStateStore(tmp_path / "state.db")
    await log.open()
    await state.open()
    try:
        assert log.partitions == 1
        for call in (
            log.read(0, 10, partition=1),
            log.head(partition=2),
            state.checkpoint(partition=1),
            state.outbox_due(0.0, 10, partition=1),
            state.commit(FoldCommit(checkpoint=1, partition=3)),
            state.commit(FoldCommit(checkpoint=1, handovers=[Handover("u1", "u2", 2)])),
        ):
            with pytest.raises(ValueError, match=r"one partition \(0\)"):
                await call
        assert await state.checkpoint() == 0  # the refused commit changed nothing
    finally:
        await log.close()
        await state.close()


async def test_campaign_counts_are_taken_from_a_state_file_that_had_none(tmp_path: Path) -> None:
    """A state file from before campaign_messages existed: its campaign rows are counted when
    it is opened, and kept from there on."""
    path = tmp_path / "state.db"
    state = SqliteStateStore(path)
    await state.open()
    rows = [intent("campaign:c1:a"), intent("campaign:c1:b")]
    await state.commit(FoldCommit(checkpoint=1, intents=rows))
    await state.outbox_update([update("campaign:c1:b", "sent", code=250, next_at=11.0)])
    await state.close()
    with sqlite3.connect(path) as old:
        old.executescript(
            "DROP TRIGGER campaign_message_added; DROP TRIGGER campaign_message_moved;"
            "DROP TABLE campaign_messages;"
        )
    state = SqliteStateStore(path)
    await state.open()
    try:
        assert await state.campaign_messages("c1") == {"queued": 1, "sent": 1}
        await state.outbox_update([update("campaign:c1:a", "bounced", code=550, next_at=11.0)])
        assert await state.campaign_messages("c1") == {"sent": 1, "bounced": 1}
    finally:
        await state.close()


async def test_rows_due_are_found_without_reading_the_rest_of_the_outbox(tmp_path: Path) -> None:
    """The look for deferred rows due runs every second: with thousands of sent (and queued)
    rows about, it reads what is due, not the outbox."""
    state = SqliteStateStore(tmp_path / "state.db")
    await state.open()
    try:
        rows = [intent(f"k{n}") for n in range(3000)]
        await state.commit(FoldCommit(checkpoint=1, intents=rows))
        await state.outbox_update(
            [update(f"k{n}", "sent", code=250, next_at=11.0) for n in range(2000)]
            + [update("k2000", "deferred", code=451, next_at=12.0)]
        )
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        reader = state._db._reader  # the connection reads run on
        assert reader is not None
        reader.set_progress_handler(count, 100)
        try:
            [due] = await state.outbox_due(20.0, 10, "deferred")
            deferred_steps, steps = steps, 0
            queued = await state.outbox_due(20.0, 10, "queued")
        finally:
            reader.set_progress_handler(None, 100)
        assert due.intent.key == "k2000" and len(queued) == 10
        # A scan of 3,000 rows takes hundreds of these hundred-instruction steps.
        assert deferred_steps < 20 and steps < 20
    finally:
        await state.close()
