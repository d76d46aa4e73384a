"""One SMTP client connection: the conversation only (RFC 5321, 2920, 3207, 4954).

It opens, greets, upgrades to TLS, authenticates and runs transactions, returning the server's
replies. What a reply means for the message (sent, deferred, bounced) is decided by the relay.
Network trouble surfaces as OSError (ConnectionError, ssl.SSLError), TimeoutError or
SmtpProtocolError; a refusal during set-up as SmtpSetupError.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections import deque
from dataclasses import dataclass

from mailpulse.delivery.address import ascii_domain
from mailpulse.delivery.smtp_reply import Reply, ReplyParser, SmtpProtocolError

_BARE_LINE_END = re.compile(rb"\r(?!\n)|(?<!\r)\n")
# re, not `in`: for a short needle CPython's substring search steps at most its length + 1
# bytes at a time (18 us through a 20 KB message), where re runs a tight loop to each line
# feed, a rare byte (6 us).
_DOT_AT_LINE_START = re.compile(rb"\n\.")


class SmtpSetupError(Exception):
    """The server refused a step before any transaction (greeting, EHLO, STARTTLS, AUTH)."""

    def __init__(self, step: str, reply: Reply | None = None, reason: str = "") -> None:
        self.step = step
        self.reply = reply
        detail = f"{reply.code} {reply.text}" if reply else reason
        super().__init__(f"{step}: {detail}")


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    host: str
    port: int
    helo_name: str
    starttls: bool | None
    implicit_tls: bool
    username: str | None
    password: str | None
    timeout: float
    # The name STARTTLS checks the certificate against when `host` is an address (direct MX).
    server_name: str | None = None


def dot_stuffed(data: bytes, *, crlf_only: bool = False) -> bytes:
    """DATA content as it goes on the wire (RFC 5321 §4.5.2), terminator included.

    Bare CR or LF become CRLF first: a lone LF before a dot is how SMTP smuggling starts.
    `crlf_only`: the caller vouches there are none (mailpulse.delivery.build_message's output),
    which saves three scans of every message.
    """
    if not crlf_only:
        crlf = data.count(b"\r\n")
        if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
            data = _BARE_LINE_END.sub(b"\r\n", data)
    if _DOT_AT_LINE_START.search(data):  # a scan that finds nothing is cheaper than replace
        data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data or data.endswith(b"\r\n"):
        return data + b".\r\n"
    return data + b"\r\n.\r\n"


class _ReplyReader(asyncio.Protocol):
    """Collects replies as they arrive; `read(n)` waits for the next n of them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.parser = ReplyParser()
        self.replies: deque[Reply] = deque()
        self.error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._wanted = 0
        self._drain: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.replies.extend(self.parser.feed(data))
        except SmtpProtocolError as err:
            self._fail(err)
            if self.transport is not None:
                self.transport.abort()
            return
        waiter = self._waiter
        if waiter is not None and len(self.replies) >= self._wanted and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool:
        self._fail(ConnectionError("the server closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "the server closed the connection"
        self._fail(ConnectionError(reason))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._drain = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.error)

    def _time_out(self, what: str) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError(f"no reply to {what} within {self.timeout:g} s"))

    async def drain(self) -> None:
        if self._drain is not None:
            await self._drain
        if self.error is not None:
            raise self.error

    async def read(self, count: int, what: str) -> list[Reply]:
        if len(self.replies) < count:
            if self.error is not None:
                raise type(self.error)(f"{self.error} (waiting for the reply to {what})")
            self._waiter = self.loop.create_future()
            self._wanted = count
            timer = self.loop.call_later(self.timeout, self._time_out, what)
            try:
                await self._waiter
            except ConnectionError as err:
                raise ConnectionError(f"{err} (waiting for the reply to {what})") from None
            finally:
                timer.cancel()
                self._waiter = None
        replies = self.replies
        return [replies.popleft() for _ in range(count)]


class SmtpConnection:
    """An open, greeted (and, as configured, encrypted and authenticated) SMTP session."""

    def __init__(self, reader: _ReplyReader) -> None:
        self._reader = reader
        self.extensions: dict[str, str] = {}
        self.encrypted = False
        self.transactions = 0
        self.body_sent = False  # in the current transaction

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def usable(self) -> bool:
        """Open, and holding no reply nobody asked for (a 421 sent while idle)."""
        reader = self._reader
        return (
            reader.error is None
            and reader.transport is not None
            and not reader.transport.is_closing()
            and not reader.replies
            and reader.parser.idle
        )

    @classmethod
    async def open(
        cls, settings: ConnectionSettings, tls_context: ssl.SSLContext | None
    ) -> SmtpConnection:
        loop = asyncio.get_running_loop()
        reader = _ReplyReader(loop, settings.timeout)
        async with asyncio.timeout(settings.timeout):
            await loop.create_connection(
                lambda: reader,
                settings.host,
                settings.port,
                ssl=tls_context if settings.implicit_tls else None,
                server_hostname=settings.host if settings.implicit_tls else None,
            )
        connection = cls(reader)
        connection.encrypted = settings.implicit_tls
        try:
            await connection._set_up(settings, tls_context)
        except BaseException:
            connection.close()
            raise
        return connection

    async def _set_up(
        self, settings: ConnectionSettings, tls_context: ssl.SSLContext | None
    ) -> None:
        (greeting,) = await self._reader.read(1, "the greeting")
        if greeting.code != 220:
            raise SmtpSetupError("greeting", greeting)
        await self._hello(settings.helo_name)
        if not self.encrypted and settings.starttls is not False:
            await self._starttls(settings, tls_context)
        if settings.username is not None:
            await self._authenticate(settings.username, settings.password or "")

    async def _hello(self, helo_name: str) -> None:
        (reply,) = await self._command(
            b"EHLO %s\r\n" % ascii_domain(helo_name).encode("ascii"), "EHLO"
        )
        if reply.ok:
            self.extensions = {}
            for line in reply.lines[1:]:
                keyword, _, params = line.replace("=", " ", 1).partition(" ")
                self.extensions[keyword.upper()] = params.strip()
            return
        if not 500 <= reply.code < 600:
            raise SmtpSetupError("EHLO", reply)
        # RFC 5321 §3.2: a server that does not know EHLO still knows HELO.
        (reply,) = await self._command(
            b"HELO %s\r\n" % ascii_domain(helo_name).encode("ascii"), "HELO"
        )
        if not reply.ok:
            raise SmtpSetupError("HELO", reply)
        self.extensions = {}

    async def _starttls(
        self, settings: ConnectionSettings, tls_context: ssl.SSLContext | None
    ) -> None:
        required = settings.starttls is True
        if "STARTTLS" not in self.extensions or tls_context is None:
            if required:
                raise SmtpSetupError(
                    "STARTTLS", reason="required, but the server does not offer it"
                )
            return
        (reply,) = await self._command(b"STARTTLS\r\n", "STARTTLS")
        if reply.code != 220:
            if required:
                raise SmtpSetupError("STARTTLS", reply)
            return
        reader = self._reader
        # Anything sent before the handshake is plaintext a man in the middle could have
        # injected (RFC 3207 §4.2 / CVE-2011-0411): drop it.
        reader.replies.clear()
        reader.parser = ReplyParser()
        assert reader.transport is not None
        reader.transport = await reader.loop.start_tls(  # type: ignore[assignment]
            reader.transport,
            reader,
            tls_context,
            server_hostname=settings.server_name or settings.host,
            ssl_handshake_timeout=settings.timeout,
        )
        self.encrypted = True
        await self._hello(settings.helo_name)

    async def _authenticate(self, username: str, password: str) -> None:
        if not self.encrypted:
            raise SmtpSetupError("AUTH", reason="will not send credentials without TLS")
        mechanisms = self.extensions.get("AUTH", "").upper().split()
        user, secret = username.encode("utf-8"), password.encode("utf-8")
        if "PLAIN" in mechanisms:
            token = base64.b64encode(b"\0" + user + b"\0" + secret)
            (reply,) = await self._command(b"AUTH PLAIN %s\r\n" % token, "AUTH PLAIN")
        elif "LOGIN" in mechanisms:
            (reply,) = await self._command(b"AUTH LOGIN\r\n", "AUTH LOGIN")
            for value in (user, secret):
                if reply.code != 334:
                    break
                (reply,) = await self._command(base64.b64encode(value) + b"\r\n", "AUTH LOGIN")
        else:
            offered = " ".join(mechanisms) or "none"
            raise SmtpSetupError("AUTH", reason=f"no PLAIN or LOGIN mechanism (offered: {offered})")
        if reply.code != 235:
            raise SmtpSetupError("AUTH", reply)

    async def _command(self, line: bytes, what: str) -> list[Reply]:
        assert self._reader.transport is not None
        self._reader.transport.write(line)
        return await self._reader.read(1, what)

    async def begin(self, mail_from: bytes, rcpt_to: bytes) -> Reply | None:
        """MAIL, RCPT and DATA: None once the server waits for the content (354), else the
        first refusal (the transaction is then over)."""
        self.transactions += 1
        self.body_sent = False
        reader = self._reader
        transport = reader.transport
        assert transport is not None
        mail = b"MAIL FROM:<%s>\r\n" % mail_from
        rcpt = b"RCPT TO:<%s>\r\n" % rcpt_to
        if self.pipelining:
            # RFC 2920: the whole envelope and DATA in one write, the replies read together.
            transport.write(mail + rcpt + b"DATA\r\n")
            mail_reply, rcpt_reply, data_reply = await reader.read(3, "MAIL, RCPT and DATA")
            refused = next((r for r in (mail_reply, rcpt_reply) if not r.ok), None)
            if data_reply.code != 354:
                return refused or data_reply
            if refused is not None:
                # §3.1: DATA was accepted although nobody can receive: send an empty message.
                await self._command(b".\r\n", "an empty DATA")
                return refused
            return None
        for line, what in ((mail, "MAIL"), (rcpt, "RCPT")):
            (reply,) = await self._command(line, what)
            if not reply.ok:
                return reply
        (reply,) = await self._command(b"DATA\r\n", "DATA")
        return None if reply.code == 354 else reply

    async def content(self, data: bytes, *, crlf_only: bool = False) -> Reply:
        """The message after a `begin` that returned None: the server's verdict on it.
        `crlf_only`: as for `dot_stuffed`."""
        reader = self._reader
        assert reader.transport is not None
        reader.transport.write(dot_stuffed(data, crlf_only=crlf_only))
        self.body_sent = True
        await reader.drain()
        (reply,) = await reader.read(1, "the end of DATA")
        return reply

    async def reset(self) -> Reply:
        (reply,) = await self._command(b"RSET\r\n", "RSET")
        return reply

    async def quit(self) -> None:
        """QUIT politely and close; failures do not matter any more at this point."""
        try:
            if self.usable:
                await self._command(b"QUIT\r\n", "QUIT")
        except (OSError, TimeoutError, SmtpProtocolError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        transport = self._reader.transport
        if transport is not None and not transport.is_closing():
            transport.close()
