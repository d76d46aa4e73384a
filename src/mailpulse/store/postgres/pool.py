"""Connection pools for the PostgreSQL stores."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import asyncpg

from mailpulse.store.postgres.schema import migrate

# What a lost, refused, restarting or overloaded server looks like from here; bad input
# (asyncpg.DataError) is a PostgresError too and is told apart where it matters. An idle
# pooled connection whose server sent its last words ("terminating connection") before the
# socket closed fails its next statement with an InternalClientError.
UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresError,
    asyncpg.exceptions.InternalClientError,
)


async def open_pool(dsn: str, *, name: str, max_size: int, max_wait: float) -> asyncpg.Pool:
    """Migrate, then pool. `max_wait` (seconds) bounds connecting and every statement: a server that
    hangs must turn into an error the caller can answer with, not a request that never ends."""
    await migrate(dsn)
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        timeout=max_wait,
        command_timeout=max_wait,
        # Whatever the server's default: a commit returns once it is on disk.
        server_settings={"application_name": name, "synchronous_commit": "on"},
    )


async def close_pool(pool: asyncpg.Pool, max_wait: float) -> None:
    """Close gracefully; a connection stuck on a dead server must not hold the shutdown."""
    try:
        await asyncio.wait_for(pool.close(), max_wait)
    except TimeoutError:
        pool.terminate()


class PoolHolder:
    """A store's pool: opened and closed with the store; asked for while closed, it raises
    `closed(message)`, whatever error the store's callers expect."""

    def __init__(
        self,
        dsn: str,
        *,
        name: str,
        size: int,
        timeout: float,
        what: str,
        closed: Callable[[str], Exception] = RuntimeError,
    ) -> None:
        self.where = describe(dsn)
        self._dsn, self._name, self._size, self._timeout = dsn, name, size, timeout
        self._what, self._closed = what, closed
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await open_pool(
            self._dsn, name=self._name, max_size=self._size, max_wait=self._timeout
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await close_pool(pool, self._timeout)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise self._closed(f"the {self._what} in {self.where} is not open")
        return self._pool


def describe(dsn: str) -> str:
    """Where a DSN points, without its credentials, for error messages."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        return "PostgreSQL"
    return f"PostgreSQL at {parts.netloc.rpartition('@')[2]}{parts.path}"
