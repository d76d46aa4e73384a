"""A courier in a child process: rendering, DKIM and SMTP on a core of their own.

One event loop cannot take in events, fold them and also render, sign (~0.3 ms of RSA) and
speak SMTP for every message without queueing all of it behind each other. The child loads the
same project (templates compiled once, the DKIM key, the relay) and answers each intent with a
`Delivered` (a prepare request, a hint sent before the event is durable, gets no answer).
Frames on its stdin/stdout: a 4-byte length, then JSON (JSON, not msgpack:
event properties may hold integers of any size).

If the child dies, the intents it held come back as deferrals (`code` 0) and are retried like
any other; the next intent starts a new child. The child leaves when its stdin closes, so it
never outlives its parent, even one killed with -9, and it leaves at once: a message it has not
started must not go out after the parent that would record it is gone.

Templates read the catalog as it is when the message is made, so the child opens the catalog
itself: its location (a file path, or a postgresql:// URL with its credentials) comes in the
environment, which other users cannot read, unlike a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import signal
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

from mailpulse.runtime.courier import Courier, Delivered
from mailpulse.tokens import SECRET_ENV
from mailpulse.types import DeliveryResult, DeliveryStatus, SendIntent

log = logging.getLogger("mailpulse.courier")

_LENGTH = struct.Struct(">I")
_READY = 0
CATALOG_ENV = "MAILPULSE_COURIER_CATALOG"


class _Request(msgspec.Struct):
    id: int
    intent: SendIntent
    prepare: bool = False  # a hint only: nobody waits for a reply


class _Reply(msgspec.Struct):
    id: int
    delivered: Delivered


_encode = msgspec.json.Encoder().encode
_decode_request = msgspec.json.Decoder(_Request).decode
_decode_reply = msgspec.json.Decoder(_Reply).decode


def _frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


class _Frames:
    """The first frame of a turn of the loop leaves at once (a triggered message must not wait
    for the rest of the turn); those after it in the same turn leave together in one write at
    its end: at a broadcast's pace a write each would be a system call per message at both
    ends of the pipe."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self._waiting: list[bytes] = []
        self._in_turn = False  # a frame went this turn; the turn's end flushes the others

    def send(self, payload: bytes) -> None:
        if self._in_turn:
            self._waiting.append(_frame(payload))
            return
        self._in_turn = True
        asyncio.get_running_loop().call_soon(self._turn_ended)
        self._write(_frame(payload))

    def _turn_ended(self) -> None:
        self._in_turn = False
        self.flush()

    def flush(self) -> None:
        if self._waiting:
            frames, self._waiting = self._waiting, []
            self._write(b"".join(frames))


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return await reader.readexactly(length)


class CourierProcess:
    def __init__(
        self,
        project_root: Path,
        smtp: tuple[str, int] | None = None,
        catalog: str | None = None,
        secret: str | None = None,
    ) -> None:
        """`catalog`: the location of the catalog templates read (CatalogStore.location);
        without one, every item looked up is missing. `secret`: what tokens are signed with
        (see mailpulse.tokens), the parent's."""
        self._project_root = project_root
        self._smtp = smtp
        self._catalog = catalog
        self._secret = secret
        self._proc: asyncio.subprocess.Process | None = None
        self._frames: _Frames | None = None  # to self._proc
        self._reading: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[Delivered]] = {}
        self._ids = itertools.count(1)
        self._starting: asyncio.Lock | None = None

    async def start(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._proc is not None and self._proc.returncode is None:
                return
            args = [str(self._project_root)]
            if self._smtp is not None:
                args += ["--smtp", f"{self._smtp[0]}:{self._smtp[1]}"]
            env = {k: v for k, v in os.environ.items() if k != CATALOG_ENV}
            if self._catalog is not None:
                env[CATALOG_ENV] = self._catalog
            if self._secret is not None:
                env[SECRET_ENV] = self._secret
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mailpulse.runtime.courier_process",
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=2**24,
                env=env,
            )
            assert proc.stdout is not None
            try:
                ready = _decode_reply(await asyncio.wait_for(_read_frame(proc.stdout), 60))
            except (asyncio.IncompleteReadError, TimeoutError) as exc:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise RuntimeError(
                    f"the courier process for {self._project_root} did not start "
                    f"(exit code {proc.returncode}); see its errors above"
                ) from exc
            if ready.id != _READY:
                raise RuntimeError("the courier process spoke out of turn")
            assert proc.stdin is not None
            self._proc, self._frames = proc, _Frames(proc.stdin.write)
            self._reading = asyncio.create_task(self._read_replies(proc))

    async def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        assert proc.stdin is not None and self._frames is not None
        self._frames.flush()
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reading is not None:
            await self._reading

    def pids(self) -> list[int | None]:
        """The child's process id, None while none runs (for its CPU and memory figures)."""
        proc = self._proc
        return [proc.pid if proc is not None and proc.returncode is None else None]

    def prepare(self, intent: SendIntent) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None and self._frames is not None:
            self._frames.send(_encode(_Request(0, intent, prepare=True)))

    def submit(self, intent: SendIntent) -> Awaitable[Delivered]:
        proc = self._proc
        if proc is None or proc.returncode is not None or self._frames is None:
            return asyncio.ensure_future(self._restart_then_submit(intent))
        request_id = next(self._ids)
        fut: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = fut
        self._frames.send(_encode(_Request(request_id, intent)))
        return fut

    async def _restart_then_submit(self, intent: SendIntent) -> Delivered:
        await self.start()
        return await self.submit(intent)

    async def _read_replies(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while True:
                reply = _decode_reply(await _read_frame(proc.stdout))
                fut = self._waiting.pop(reply.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(reply.delivered)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self._proc is proc:
                self._proc = None  # the next intent starts a new child
            # Whatever the child still held may or may not have been sent: a deferral retries
            # it, with the same Message-ID.
            waiting, self._waiting = self._waiting, {}
            for fut in waiting.values():
                if not fut.done():
                    fut.set_result(_deferred("the courier process ended during the transaction"))


def _deferred(text: str) -> Delivered:
    """A delivery whose outcome is unknown: retried like any deferral (code 0)."""
    return Delivered(
        message_id="",
        result=DeliveryResult(
            key="",
            status=DeliveryStatus.DEFERRED,
            code=0,
            text=text,
            at=time.time(),
        ),
    )


async def _serve(project_root: Path, smtp: tuple[str, int] | None, frames_fd: int) -> None:
    from mailpulse.catalog import catalog_reader
    from mailpulse.project import load_project
    from mailpulse.runtime.courier_parts import local_courier
    from mailpulse.runtime.heap import settle_heap
    from mailpulse.tokens import signer_from_environment

    location = os.environ.get(CATALOG_ENV)
    catalog = catalog_reader(location) if location else None
    if catalog is not None:
        await catalog.open()
    project = load_project(project_root)
    tokens = signer_from_environment(project.config.project.secret, None)
    courier = local_courier(project, smtp, catalog, tokens)
    settle_heap()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(frames_fd, "wb")
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    writer.write(_frame(_encode(_Reply(_READY, Delivered(message_id="")))))
    replies = _Frames(writer.write)
    # A callback answers each request, not a task of its own (6 us a message less).
    sending: set[asyncio.Future[Delivered]] = set()

    def reply(request_id: int, done: asyncio.Future[Delivered]) -> None:
        sending.discard(done)
        answer = _answer(request_id, done)
        if answer is not None:
            replies.send(_encode(answer))

    try:
        while True:
            try:
                request = _decode_request(await _read_frame(reader))
            except asyncio.IncompleteReadError:
                break
            if request.prepare:
                courier.prepare(request.intent)
                continue
            # Rendering and signing happen right here, so the SMTP write is not one more turn
            # of the loop away.
            delivery = _delivery(courier, request.intent)
            sending.add(delivery)
            delivery.add_done_callback(functools.partial(reply, request.id))
        # stdin closed: after a clean shutdown nothing is outstanding; after the parent died
        # nobody will record a result, so stop now rather than send what has not started.
        for delivery in sending:
            delivery.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
    finally:
        # QUIT politely, but never hang on a peer that does not answer.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(courier.close(), 10)
        if catalog is not None:
            await catalog.close()


def _delivery(courier: Courier, intent: SendIntent) -> asyncio.Future[Delivered]:
    """`courier.submit(intent)` as a future, also when it raised before its first await (it
    makes the message right away): answered then like any delivery that raised (`_answer`),
    instead of ending the process and every delivery it holds."""
    try:
        return asyncio.ensure_future(courier.submit(intent))
    except Exception as exc:
        failed: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        failed.set_exception(exc)
        return failed


def _answer(request_id: int, done: asyncio.Future[Delivered]) -> _Reply | None:
    """The reply to a finished delivery; None for one cancelled (its parent is gone). One
    that raised is answered as a deferral: unanswered, its send would hold a place among
    those in flight for as long as the process lives."""
    if done.cancelled():
        return None
    error = done.exception()
    if error is None:
        return _Reply(request_id, done.result())
    log.error("delivery %s failed", request_id, exc_info=error)
    return _Reply(request_id, _deferred(f"the courier failed: {type(error).__name__}: {error}"))


def main(argv: list[str]) -> None:
    project_root = Path(argv[0])
    smtp = None
    if len(argv) == 3 and argv[1] == "--smtp":
        host, _, port = argv[2].rpartition(":")
        smtp = (host, int(port))
    # Frames go to the real stdout; anything else printed goes to stderr, not into a frame.
    frames_fd = os.dup(1)
    os.dup2(2, 1)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s courier %(message)s")
    # A terminal's Ctrl-C reaches the whole process group: the courier leaves it to its
    # parent, which closes the courier's stdin once its own sends are recorded.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        uvloop.run(_serve(project_root, smtp, frames_fd))
    except ImportError:
        asyncio.run(_serve(project_root, smtp, frames_fd))


if __name__ == "__main__":
    main(sys.argv[1:])
