"""Connection pools for the PostgreSQL stores."""

from __future__ import annotations

import asyncio
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


def describe(dsn: str) -> str:
    """Where a DSN points, without its credentials, for error messages."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        return "PostgreSQL"
    return f"PostgreSQL at {parts.netloc.rpartition('@')[2]}{parts.path}"
