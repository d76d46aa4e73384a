"""One thread owns one SQLite connection; calls queue up and commit together.

Group commit: every call that arrives while a transaction is being written joins the next
one, so N concurrent appends cost one fsync, not N. Each call runs inside its own SAVEPOINT,
so one failing call does not undo the others of its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()


class SqliteWorker:
    def __init__(self, path: Path, *, synchronous: str, schema: str, name: str) -> None:
        self.path = path
        self._synchronous = synchronous
        self._schema = schema
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, fut, loop))
        return await fut

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA cache_size=-65536")
        conn.executescript(self._schema)
        return conn

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        while True:
            item = self._queue.get()
            batch = [item]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(b is _STOP for b in batch)
            calls = [b for b in batch if b is not _STOP]
            if calls:
                self._run_group(conn, calls)
            if stop:
                conn.close()
                return

    def _run_group(self, conn: sqlite3.Connection, calls: list[Any]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, fut, loop in calls:
                conn.execute("SAVEPOINT call")
                try:
                    result = fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO call")
                    outcomes.append((fut, loop, False, exc))
                else:
                    outcomes.append((fut, loop, True, result))
                conn.execute("RELEASE call")
            conn.execute("COMMIT")
        except Exception as exc:
            # The commit itself failed (disk full, I/O error): nobody's write is durable.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(fut, loop, False, exc) for fn, fut, loop in calls]
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for fut, loop, ok, value in outcomes:
            by_loop.setdefault(loop, []).append((fut, ok, value))
        for loop, results in by_loop.items():
            # A closed loop means its callers are gone; nothing is left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, results)


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in results:
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
