"""A capture SMTP inbox for the demo: accepts every message and keeps the latest ones in memory.

The server runs on the caller's event loop (not aiosmtpd's threaded Controller) so the demo
shares one uvloop with the app. Capture only appends the raw bytes; headers and bodies are
parsed the first time someone looks at them.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import default as default_policy
from functools import cached_property
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

_INBOX_HOSTNAME = "mailpulse-inbox.localhost"
_MAX_MESSAGE_BYTES = 10 * 1024 * 1024


@dataclass(eq=False)
class CapturedMessage:
    """One message as the inbox received it; parsed fields are computed on first access."""

    id: int
    received_at: float
    mail_from: str  # "" for the null reverse-path
    rcpt_tos: list[str]
    raw: bytes = field(repr=False)

    @cached_property
    def headers(self) -> list[tuple[str, str]]:
        """Every header in order, decoded (RFC 2047); a header that cannot be parsed stays raw."""
        parsed = BytesHeaderParser(policy=default_policy).parsebytes(self.raw)
        return [(name, _header_text(parsed, name, raw)) for name, raw in parsed.raw_items()]

    def header(self, name: str) -> str:
        """The first header called `name` (case-insensitive), or "" when absent."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), "")

    @property
    def subject(self) -> str:
        return self.header("Subject")

    @property
    def from_header(self) -> str:
        return self.header("From")

    @property
    def to_header(self) -> str:
        return self.header("To")

    @property
    def date(self) -> str:
        return self.header("Date")

    @property
    def message_id(self) -> str:
        return self.header("Message-ID")

    @property
    def has_dkim_signature(self) -> bool:
        return any(key.lower() == "dkim-signature" for key, _ in self.headers)

    @cached_property
    def _bodies(self) -> tuple[str | None, str | None]:
        message = BytesParser(policy=default_policy).parsebytes(self.raw)
        assert isinstance(message, EmailMessage)
        return _part_text(message, "plain"), _part_text(message, "html")

    @property
    def text(self) -> str | None:
        """The text/plain body, or None when the message has none."""
        return self._bodies[0]

    @property
    def html(self) -> str | None:
        """The text/html body, or None when the message has none. Untrusted: escape it."""
        return self._bodies[1]

    def matches_recipient(self, address: str) -> bool:
        wanted = address.strip().lower()
        return any(rcpt.lower() == wanted for rcpt in self.rcpt_tos)


def _header_text(message: Any, name: str, raw: str) -> str:
    # The default policy's structured header parser has known crashes on hostile input; the
    # inbox shows whatever arrived, so fall back to the undecoded value rather than fail a page.
    try:
        return str(message.policy.header_fetch_parse(name, raw))
    except Exception:
        return raw


def _part_text(message: EmailMessage, subtype: str) -> str | None:
    try:
        part = message.get_body(preferencelist=(subtype,))
    except Exception:
        return None
    if part is None:
        return None
    try:
        content = str(part.get_content())
    except (LookupError, UnicodeError, ValueError, AssertionError):
        # Unknown or lying charset: show the bytes as best we can instead of nothing.
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return None
        content = payload.decode("utf-8", "replace")
    # SMTP delivers CRLF lines; pages and comparisons want plain newlines.
    return content.replace("\r\n", "\n")


class _CaptureHandler:
    """aiosmtpd policy hooks: advertise PIPELINING, accept every recipient, store every message."""

    def __init__(self, inbox: CaptureInbox) -> None:
        self._inbox = inbox

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # aiosmtpd reads commands one line at a time, so pipelined clients already work; it just
        # does not say so (RFC 2920 §3 requires the keyword before a client may pipeline).
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        # aiosmtpd hands over the null reverse-path (bounces, DSNs) as "<>"; keep it as "".
        mail_from = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        message = self._inbox._store(mail_from, list(envelope.rcpt_tos), raw)
        return f"250 OK captured as {message.id}"


class CaptureInbox:
    """An ESMTP server that accepts every message and keeps the last `capacity` of them."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, capacity: int = 2000) -> None:
        if capacity < 1:
            raise ValueError(f"inbox capacity must be at least 1, got {capacity}")
        self.host = host
        self.port = port
        self.capacity = capacity
        self.received_count = 0
        self._messages: deque[CapturedMessage] = deque(maxlen=capacity)
        self._handler = _CaptureHandler(self)
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
        self._arrival = asyncio.Event()

    async def start(self) -> None:
        """Listen on `host:port`; with port 0, `.port` holds the port the system chose."""
        if self._server is not None:
            raise RuntimeError("the inbox is already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_session, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and hang up on connected clients; stored messages stay readable."""
        if self._server is None:
            return
        self._server.close()
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> CaptureInbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _new_session(self) -> SMTP:
        session = SMTP(
            self._handler,
            hostname=_INBOX_HOSTNAME,
            data_size_limit=_MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            loop=asyncio.get_running_loop(),
        )
        self._sessions.add(session)
        return session

    def _store(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> CapturedMessage:
        self.received_count += 1
        message = CapturedMessage(
            id=self.received_count,
            received_at=time.time(),
            mail_from=mail_from,
            rcpt_tos=rcpt_tos,
            raw=raw,
        )
        self._messages.append(message)
        # Wake every waiter, then give later waiters a fresh event to sleep on.
        self._arrival.set()
        self._arrival = asyncio.Event()
        return message

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[CapturedMessage]:
        """Stored messages, oldest first."""
        return iter(list(self._messages))

    def get(self, message_id: int) -> CapturedMessage | None:
        """The stored message with this id, or None when unknown or already dropped."""
        if not self._messages:
            return None
        # Ids are consecutive, so a message's position follows from the oldest id kept.
        index = message_id - self._messages[0].id
        if 0 <= index < len(self._messages):
            return self._messages[index]
        return None

    def messages(self, *, limit: int | None = None, to: str | None = None) -> list[CapturedMessage]:
        """Stored messages newest first, optionally only those with envelope recipient `to`."""
        found: list[CapturedMessage] = []
        for message in reversed(self._messages):
            if to is not None and not message.matches_recipient(to):
                continue
            found.append(message)
            if limit is not None and len(found) >= limit:
                break
        return found

    # A timeout argument (not asyncio.timeout) keeps test call sites to one line.
    async def wait_for(
        self,
        predicate: Callable[[CapturedMessage], bool],
        timeout: float,  # noqa: ASYNC109
    ) -> CapturedMessage:
        """The first stored message (oldest first) matching `predicate`, waiting up to `timeout`
        seconds for one to arrive. Raises TimeoutError."""
        checked_up_to = 0
        async with asyncio.timeout(timeout):
            while True:
                arrival = self._arrival
                for message in list(self._messages):
                    if message.id > checked_up_to:
                        if predicate(message):
                            return message
                        checked_up_to = message.id
                await arrival.wait()
