"""Which partitions a worker owns: PostgreSQL advisory locks, one per partition.

The locks live in one session per worker. PostgreSQL drops them itself when that session ends,
so the partitions of a worker killed with -9 are free the moment its connection closes, and
no home-made heartbeat or consensus is needed. Workers count each other by the sessions that
carry `application_name = mailpulse-worker` and take a fair share each (ceil(partitions /
workers)); one that holds more than its share lets the surplus go, so that a worker that joins
gets work within a few balancing rounds.
"""

from __future__ import annotations

import math

import asyncpg

APPLICATION_NAME = "mailpulse-worker"
_LOCK_SPACE = 0x6D70  # "mp": the first key of every advisory lock mailpulse takes


class PartitionLeases:
    def __init__(self, dsn: str, partitions: int, *, timeout: float = 5.0) -> None:
        self._dsn = dsn
        self.partitions = partitions
        self._timeout = timeout
        self._conn: asyncpg.Connection | None = None
        self.owned: set[int] = set()

    async def open(self) -> None:
        self.owned = set()
        self._conn = await asyncpg.connect(
            self._dsn,
            timeout=self._timeout,
            command_timeout=self._timeout,
            server_settings={"application_name": APPLICATION_NAME},
        )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self.owned = set()
        if conn is not None:
            conn.terminate()  # the locks go with the session

    @property
    def alive(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def _session(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            raise ConnectionError("the lease session is closed: every partition is lost")
        return self._conn

    async def fair_share(self) -> int:
        workers = await self._session().fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            APPLICATION_NAME,
        )
        return math.ceil(self.partitions / max(1, workers))

    async def acquire(self, want: int) -> set[int]:
        """Try free partitions until `want` are owned; returns the ones gained."""
        conn = self._session()
        gained: set[int] = set()
        for p in range(self.partitions):
            if len(self.owned) >= want:
                break
            if p in self.owned:
                continue
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", _LOCK_SPACE, p):
                self.owned.add(p)
                gained.add(p)
        return gained

    async def release(self, partition: int) -> None:
        """Let a partition go; its work must have stopped first."""
        await self._session().fetchval("SELECT pg_advisory_unlock($1, $2)", _LOCK_SPACE, partition)
        self.owned.discard(partition)

    async def still_held(self) -> bool:
        """Whether the session (and so every lock) is still there."""
        held = await self._session().fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            "AND classid = $1",
            _LOCK_SPACE,
        )
        return held == len(self.owned)
