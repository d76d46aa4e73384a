"""Delivery through one SMTP relay: a pool of reused, pipelined connections.

Each `send` is one transaction and answers with a `DeliveryResult`; it never raises for what
the network or the server does. 2xx is SENT, 4xx DEFERRED, 5xx BOUNCED; no answer at all
(refused, timed out, cut off) is DEFERRED with code 0.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from functools import lru_cache

from mailpulse.delivery.address import ascii_addr_spec, parse_address
from mailpulse.delivery.smtp_connection import ConnectionSettings, SmtpConnection, SmtpSetupError
from mailpulse.delivery.smtp_reply import Reply, SmtpProtocolError
from mailpulse.types import DeliveryResult, DeliveryStatus, RenderedMessage

__all__ = ["OpenTransaction", "SmtpRelay"]

_NETWORK_ERRORS = (OSError, TimeoutError, SmtpProtocolError)  # ssl.SSLError is an OSError


class _RelayClosed(Exception):
    pass


@lru_cache(maxsize=1024)
def _envelope_address(address: str) -> bytes:
    """The bare addr-spec for MAIL/RCPT (IDNA domain); "" stays the null sender."""
    if not address:
        return b""
    return ascii_addr_spec(parse_address(address)[1]).encode("ascii")


def _status(code: int) -> DeliveryStatus:
    if 200 <= code < 300:
        return DeliveryStatus.SENT
    if 500 <= code < 600:
        return DeliveryStatus.BOUNCED
    return DeliveryStatus.DEFERRED


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if isinstance(error, SmtpProtocolError) else f"{type(error).__name__}: {text}"


def delivery_result(
    key: str, status: DeliveryStatus, code: int, enhanced: str, text: str
) -> DeliveryResult:
    return DeliveryResult(
        key=key, status=status, code=code, enhanced=enhanced, text=text, at=time.time()
    )


def _from_reply(key: str, reply: Reply) -> DeliveryResult:
    return delivery_result(key, _status(reply.code), reply.code, reply.enhanced, reply.text)


class SmtpRelay:
    """Sends through `host:port` over at most `max_connections` connections."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        helo_name: str | None = None,
        starttls: bool | None = None,
        implicit_tls: bool = False,
        username: str | None = None,
        password: str | None = None,
        tls_verify: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 10,
        max_messages_per_connection: int = 100,
        timeout: float = 30.0,
        server_name: str | None = None,
    ) -> None:
        """`starttls`: None uses it when offered, True requires it, False never uses it.
        `server_name`: the name TLS verifies when `host` is an address."""
        if max_connections < 1 or max_messages_per_connection < 1:
            raise ValueError("max_connections and max_messages_per_connection must be >= 1")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if username is not None and starttls is False and not implicit_tls:
            raise ValueError("AUTH needs TLS: allow starttls or use implicit_tls")
        if implicit_tls and starttls:
            raise ValueError("implicit_tls and starttls=True exclude each other")
        self._settings = ConnectionSettings(
            host=host,
            port=port,
            helo_name=helo_name or socket.getfqdn(),
            starttls=starttls,
            implicit_tls=implicit_tls,
            username=username,
            password=password,
            timeout=timeout,
            server_name=server_name,
        )
        self._ssl_context = ssl_context
        self._tls_verify = tls_verify
        self._max_connections = max_connections
        self._max_messages = max_messages_per_connection
        self._idle: list[SmtpConnection] = []
        self._waiters: deque[asyncio.Future[SmtpConnection | None]] = deque()
        self._open = 0  # connections open or being opened
        self._in_flight = 0
        self._quitting: set[asyncio.Task[None]] = set()
        self._closed = False
        self._all_returned: asyncio.Event | None = None

    @property
    def in_flight(self) -> int:
        """Transactions between sending MAIL and reading the reply to the message content."""
        return self._in_flight

    def _tls_context(self) -> ssl.SSLContext | None:
        if self._ssl_context is None and (
            self._settings.implicit_tls or self._settings.starttls is not False
        ):
            context = ssl.create_default_context()
            if not self._tls_verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl_context = context
        return self._ssl_context

    async def send(self, message: RenderedMessage) -> DeliveryResult:
        """Runs one transaction for `message`; never raises for network or SMTP trouble."""
        opened = await self.begin(message.key, message.mail_from, message.rcpt_to)
        if isinstance(opened, DeliveryResult):
            return opened
        return await opened.finish(message.data)

    def has_free_connection(self) -> bool:
        """Whether a transaction could start now without waiting for another to end."""
        return bool(self._idle) or self._open < self._max_connections

    async def begin(
        self, key: str, mail_from: str, rcpt_to: str
    ) -> OpenTransaction | DeliveryResult:
        """The envelope of a transaction, up to the server's 354: an `OpenTransaction` that
        waits for the content, or the result when the server refused it or could not be
        reached. Nothing is delivered until `finish`; `abandon` drops the connection, and with
        it the transaction (RFC 5321 §4.1.1.4: no delivery without the end of data)."""
        if self._closed:
            raise RuntimeError("SmtpRelay.begin after close()")
        try:
            mail_addr = _envelope_address(mail_from)
        except ValueError as err:
            raise ValueError(f"bad envelope sender: {err}") from None
        try:
            rcpt_addr = _envelope_address(rcpt_to)
        except ValueError as err:
            return delivery_result(key, DeliveryStatus.BOUNCED, 0, "5.1.3", str(err))
        # A reused connection the server dropped while idle fails before anything is accepted;
        # that one attempt is repeated on a fresh connection.
        for attempt in (1, 2):
            try:
                connection = await self._checkout()
            except SmtpSetupError as err:
                reply = err.reply
                code, enhanced = (reply.code, reply.enhanced) if reply else (0, "")
                return delivery_result(key, DeliveryStatus.DEFERRED, code, enhanced, str(err))
            except _RelayClosed:
                return delivery_result(key, DeliveryStatus.DEFERRED, 0, "", "relay closed")
            except _NETWORK_ERRORS as err:
                return delivery_result(key, DeliveryStatus.DEFERRED, 0, "", _describe(err))
            reused = connection.transactions > 0
            self._in_flight += 1
            try:
                refused = await connection.begin(mail_addr, rcpt_addr)
            except _NETWORK_ERRORS as err:
                self._in_flight -= 1
                connection.close()
                self._checkin(connection)
                if attempt == 1 and reused:
                    continue
                return delivery_result(key, DeliveryStatus.DEFERRED, 0, "", _describe(err))
            except asyncio.CancelledError:
                self._in_flight -= 1
                # Cancelled mid-conversation: the connection is in an unknown state. It goes,
                # and is counted back in, or close() would wait for it forever.
                connection.close()
                self._checkin(connection)
                raise
            if refused is None:
                return OpenTransaction(self, key, connection)
            self._in_flight -= 1
            await self._end(connection, refused)
            return _from_reply(key, refused)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _end(self, connection: SmtpConnection, reply: Reply) -> None:
        """After the last reply of a transaction: the connection back to the pool, reset if
        the transaction failed, closed if the server is closing it."""
        if reply.code == 421:
            # RFC 5321 §3.8: the server is closing this channel.
            connection.close()
        elif not reply.ok:
            try:
                await self._reset(connection)
            except asyncio.CancelledError:
                connection.close()
                self._checkin(connection)
                raise
        self._checkin(connection)

    async def _reset(self, connection: SmtpConnection) -> None:
        try:
            reply = await connection.reset()
        except _NETWORK_ERRORS:
            connection.close()
            return
        if not reply.ok:
            connection.close()

    async def _checkout(self) -> SmtpConnection:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
            connection.close()
            self._open -= 1
        if self._open >= self._max_connections:
            waiter: asyncio.Future[SmtpConnection | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    # Handed over just as we were cancelled: pass it on.
                    given = waiter.result()
                    if given is None:
                        self._open -= 1
                        self._give_slot()
                    else:
                        self._checkin(given)
                raise
            if handed is not None:
                return handed
            # Handed a free slot: `_open` already counts the connection we now open.
        else:
            self._open += 1
        try:
            return await SmtpConnection.open(self._settings, self._tls_context())
        except BaseException:
            self._open -= 1
            self._give_slot()
            raise

    def _checkin(self, connection: SmtpConnection) -> None:
        if not self._closed and connection.usable and connection.transactions < self._max_messages:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(connection)
                    return
            self._idle.append(connection)
            return
        self._retire(connection)

    def _retire(self, connection: SmtpConnection) -> None:
        task = asyncio.get_running_loop().create_task(connection.quit())
        self._quitting.add(task)
        task.add_done_callback(self._quitting.discard)
        self._open -= 1
        self._give_slot()

    def _give_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            if self._closed:
                waiter.set_exception(_RelayClosed())
                continue
            self._open += 1
            waiter.set_result(None)
            return
        if self._open == 0 and self._all_returned is not None:
            self._all_returned.set()

    async def close(self) -> None:
        """QUITs and closes every connection, after the transactions under way have ended."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            self._retire(connection)
        self._give_slot()  # fails whoever still waits for a connection
        if self._open > 0:
            self._all_returned = asyncio.Event()
            await self._all_returned.wait()
        if self._quitting:
            await asyncio.gather(*self._quitting)


class OpenTransaction:
    """A transaction the server has accepted up to DATA, waiting for the message."""

    def __init__(self, relay: SmtpRelay, key: str, connection: SmtpConnection) -> None:
        self._relay = relay
        self._key = key
        self._connection: SmtpConnection | None = connection

    async def finish(self, data: bytes, *, crlf_only: bool = False) -> DeliveryResult:
        """Sends the content; the server's verdict. Never raises for network trouble.
        `crlf_only`: `data` ends every line in CRLF (see `dot_stuffed`)."""
        connection, self._connection = self._connection, None
        if connection is None:
            raise RuntimeError("OpenTransaction.finish after finish() or abandon()")
        relay = self._relay
        try:
            reply = await connection.content(data, crlf_only=crlf_only)
        except _NETWORK_ERRORS as err:
            connection.close()
            relay._checkin(connection)
            return delivery_result(self._key, DeliveryStatus.DEFERRED, 0, "", _describe(err))
        except asyncio.CancelledError:
            connection.close()
            relay._checkin(connection)
            raise
        finally:
            relay._in_flight -= 1
        await relay._end(connection, reply)
        return _from_reply(self._key, reply)

    def abandon(self) -> None:
        """Drops the transaction: the connection closes before the end of data."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._relay._in_flight -= 1
        connection.close()
        self._relay._checkin(connection)
