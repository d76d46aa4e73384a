"""Which partitions a worker owns: PostgreSQL advisory locks, one per partition.

The locks live in one session per worker. PostgreSQL drops them itself when that session ends,
so the partitions of a worker killed with -9 are free the moment its connection closes, and
no home-made heartbeat or consensus is needed. Workers count each other by the sessions that
carry `application_name = mailpulse-worker` and take a fair share each (ceil(partitions /
workers)); one that holds more than its share lets the surplus go, so that a worker that joins
gets work within a few balancing rounds.

A lock says who may run a partition now; `partition_owners` says who ran it last and whether
it stopped cleanly. Outcomes of sends are recorded after the SMTP reply, so a worker cut off
by a database restart may hold sent-but-unrecorded messages when its locks vanish. The next
owner waits for it to record them and say so (`stopped_cleanly`), up to TAKEOVER_GRACE: past
that the old owner is taken for dead, and only its in-flight transactions can go out twice.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid

import asyncpg

APPLICATION_NAME = "mailpulse-worker"
_LOCK_SPACE = 0x6D70  # "mp": the first key of every advisory lock mailpulse takes
TAKEOVER_GRACE = 5.0  # seconds a partition's previous owner has to say it stopped cleanly


class PartitionLeases:
    def __init__(
        self,
        dsn: str,
        partitions: int,
        *,
        timeout: float = 5.0,
        takeover_grace: float = TAKEOVER_GRACE,
    ) -> None:
        self._dsn = dsn
        self.partitions = partitions
        self._timeout = timeout
        self._grace = takeover_grace
        self._conn: asyncpg.Connection | None = None
        self.owned: set[int] = set()
        self.worker = uuid.uuid4().hex
        self._unclean_since: dict[int, float] = {}

    async def open(self) -> None:
        self.owned = set()
        self._unclean_since = {}
        self._conn = await self._connect(APPLICATION_NAME)

    async def _connect(self, name: str) -> asyncpg.Connection:
        return await asyncpg.connect(
            self._dsn,
            timeout=self._timeout,
            command_timeout=self._timeout,
            server_settings={"application_name": name},
        )

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self.owned = set()
        if conn is None:
            return
        # The locks go with the session. A graceful close returns once PostgreSQL has closed
        # the socket, which its backend does after letting the locks go, so another worker
        # finds them free at once (a terminated connection's backend lets them go a moment
        # later). Whatever stops that (no answer in time, a query still running, a connection
        # already broken), the session is cut off, as before.
        try:
            await conn.close(timeout=self._timeout)
        except Exception:
            conn.terminate()

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

    async def may_start(self, partition: int) -> bool:
        """Whether an owned partition may start now: its previous owner stopped it cleanly,
        or was this worker, or has had TAKEOVER_GRACE to say so. Starting claims it."""
        conn = self._session()
        row = await conn.fetchrow(
            "SELECT worker, clean FROM partition_owners WHERE partition = $1", partition
        )
        if row is not None and row["worker"] != self.worker and not row["clean"]:
            since = self._unclean_since.setdefault(partition, time.monotonic())
            if time.monotonic() - since < self._grace:
                return False
        self._unclean_since.pop(partition, None)
        await conn.execute(
            "INSERT INTO partition_owners (partition, worker, clean) VALUES ($1, $2, false) "
            "ON CONFLICT (partition) DO UPDATE SET worker = $2, clean = false",
            partition,
            self.worker,
        )
        return True

    async def stopped_cleanly(self, partition: int) -> None:
        """Say that this worker stopped `partition` with every send recorded. Also after the
        lease session is lost, so on a connection of its own, tried until the database
        takes it."""
        pause = 0.1
        while True:
            try:
                conn = await self._connect(f"{APPLICATION_NAME}-stop")
                try:
                    await conn.execute(
                        "UPDATE partition_owners SET clean = true "
                        "WHERE partition = $1 AND worker = $2",
                        partition,
                        self.worker,
                    )
                finally:
                    await conn.close()
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)
