"""A SQLite file used from the event loop, with group commit and off-loop fsync.

Statements run on the event loop's own thread: they take microseconds, and a worker thread
would have to win the GIL back from the loop for every statement (measured: 0.4 ms a statement
under load). Only what blocks on the disk leaves the loop: the COMMIT of a durable file (its
fsync) and WAL checkpoints, each on a thread of its own, where the GIL is released.

Group commit: calls made in the same turn of the event loop, or while a durable COMMIT is on
disk, share one transaction, so N concurrent writers cost one commit (measured: per-call
commits of the state file took a fifth of the loop at 1,000 events/s). Each call runs inside
its own SAVEPOINT (when one of them fails), so one failing call does not undo the others of its
group. A call may therefore run twice: it must only write through its connection (or, like the
log's offset counter, tolerate running again).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_CHECKPOINT_EVERY = 0.2  # seconds

_Call = tuple[
    Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", Callable[[Any], None] | None
]


# Page cache per connection, in KiB. Each file has a writer, a reader and a checkpointer, and
# a broadcast grows the files by GBs: 64 MB apiece held the server above 450 MB by 60,000
# recipients; 16 -> 8 -> 4 MB each kept 20 and then 13 MB less at no measurable cost in CPU
# per message (the pages written are at the right edges of their b-trees). The checkpointer
# only copies pages from the WAL, so it needs little; nor does the reader, since the fold
# keeps the contacts it reads (4 -> 1 MB: 2.7 MB less at the peak of a 100,000-recipient
# broadcast, the same CPU per message and ingestion rate).
CACHE_KIB = 4096
CHECKPOINT_CACHE_KIB = 1024
READER_CACHE_KIB = 1024


def _connect(path: Path, synchronous: str, cache_kib: int = CACHE_KIB) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    # Deleted and overwritten content is zeroed, not left in free pages: what an erasure or
    # the retention of events removes is gone from the file (see mailpulse.privacy).
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute(f"PRAGMA cache_size=-{cache_kib}")
    return conn


def rows_in(conn: sqlite3.Connection, select: str, values: Sequence[str]) -> list[tuple[Any, ...]]:
    """The rows of `select` + ` IN (values)`, in chunks: SQLite binds at most 32,766
    parameters to a statement."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        rows += conn.execute(f"{select} IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    return rows


def select_in(conn: sqlite3.Connection, select: str, values: Sequence[str]) -> set[str]:
    """The first column of `select` + ` IN (values)` (see `rows_in`)."""
    return {row[0] for row in rows_in(conn, select, values)}


def add_column(conn: sqlite3.Connection, table: str, column: str, alter: str) -> None:
    """Run `alter` (an ALTER TABLE ... ADD COLUMN) on a file made before `table` had `column`:
    the schema's CREATE TABLE IF NOT EXISTS leaves an older table as it was."""
    if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
        conn.execute(alter)


def only_partition(partition: int) -> None:
    """Embedded mode keeps the whole log in one partition, read by one fold."""
    if partition != 0:
        raise ValueError(f"an embedded store has one partition (0), not {partition}")


class SqliteFile:
    def __init__(
        self,
        path: Path,
        *,
        durable: bool,
        schema: str,
        name: str,
        on_commit: Callable[[bool], None] | None = None,
    ) -> None:
        self.path = path
        self._on_commit = on_commit
        self._durable = durable
        self._schema = schema
        self._name = name
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._fsync = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-fsync")
        self._pending: list[_Call] = []
        self._flushing: asyncio.Task[None] | None = None
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()
        self._truncate = threading.Event()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _connect(self.path, "FULL" if self._durable else "NORMAL")
        # Checkpoints run on their own thread, never inside a commit on the loop.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.executescript(self._schema)
        self._reader = _connect(self.path, "NORMAL", READER_CACHE_KIB)
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name=f"{self._name}-checkpoint", daemon=True
        )
        self._checkpointer.start()

    async def close(self) -> None:
        if self._flushing is not None:
            await self._flushing
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join()
        self._fsync.shutdown(wait=True)
        for conn in (self._conn, self._reader):
            if conn is not None:
                conn.close()
        self._conn = self._reader = None

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a query on the reader connection: it sees every committed write."""
        if self._reader is None:
            raise RuntimeError(f"{self.path} is not open")
        return fn(self._reader)

    async def write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        on_written: Callable[[T], None] | None = None,
    ) -> T:
        """Run `fn` in a transaction; returns once the transaction is committed (and, for a
        durable file, on disk). `on_written` sees the result as soon as it is written, before
        the commit: for work that may start early but must not take effect before it."""
        if self._conn is None:
            raise RuntimeError(f"{self.path} is not open")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, fut, on_written))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        conn = self._conn
        assert conn is not None
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group, self._pending = self._pending, []
                outcomes = self._run_group(conn, group)
                for (_, _, on_written), (_, ok, value) in zip(group, outcomes, strict=True):
                    if ok and on_written is not None:
                        on_written(value)
                committed = True
                try:
                    if self._durable:
                        await loop.run_in_executor(self._fsync, conn.execute, "COMMIT")
                    else:
                        # WAL with synchronous=NORMAL: no fsync at COMMIT, so it runs here.
                        conn.execute("COMMIT")
                except Exception as exc:
                    # Nobody's write of this group is durable.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    outcomes = [(fut, False, exc) for fut, _, _ in outcomes]
                    committed = False
                if self._on_commit is not None:
                    self._on_commit(committed)
                for fut, ok, value in outcomes:
                    if fut.done():
                        continue
                    if ok:
                        fut.set_result(value)
                    else:
                        fut.set_exception(value)
        finally:
            self._flushing = None

    @staticmethod
    def _run_group(
        conn: sqlite3.Connection, group: list[_Call]
    ) -> list[tuple[asyncio.Future[Any], bool, Any]]:
        # Optimistic first: the whole group in one go. Only if a call fails does the group run
        # again with a SAVEPOINT per call, so that the others still land (two statements a call
        # saved on the common path: measured a twentieth of the loop at 1,000 events/s).
        conn.execute("BEGIN IMMEDIATE")
        try:
            return [(fut, True, fn(conn)) for fn, fut, _ in group]
        except Exception:
            conn.execute("ROLLBACK")
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        for fn, fut, _ in group:
            conn.execute("SAVEPOINT call")
            try:
                outcomes.append((fut, True, fn(conn)))
            except Exception as exc:
                conn.execute("ROLLBACK TO call")
                outcomes.append((fut, False, exc))
            conn.execute("RELEASE call")
        return outcomes

    def truncate_wal_soon(self) -> None:
        """Have the next checkpoint empty the WAL, where the pages of earlier commits stay
        until overwritten: after an erasure, their old content must not outlive it there. It
        waits for the readers of the WAL and holds writers back meanwhile (milliseconds), so it
        is kept for erasures."""
        self._truncate.set()

    def _checkpoint_loop(self) -> None:
        conn = _connect(self.path, "NORMAL", CHECKPOINT_CACHE_KIB)
        try:
            while not self._closing.wait(_CHECKPOINT_EVERY):
                mode = "PASSIVE"
                if self._truncate.is_set():
                    self._truncate.clear()
                    mode = "TRUNCATE"
                try:
                    busy = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0]
                except sqlite3.Error:
                    busy = 1
                if busy and mode == "TRUNCATE":
                    self._truncate.set()  # not done: the next round tries again
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
