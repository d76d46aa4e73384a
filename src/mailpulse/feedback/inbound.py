"""The inbound SMTP listener: where bounces, complaints and mailto unsubscribes arrive.

aiosmtpd keeps the conversation (commands, limits, SIZE and the 552 for a message over it,
RFC 1870); `intake.Intake` decides: which recipients it accepts at RCPT (our return paths with
a valid token, and unsubscribe@), and what a message becomes once its DATA is in. Nothing a
peer sends raises out of here: a handler failure is a 451, the connection stays up.

Started by the server (embedded mode, and scale-out API nodes) when mailpulse.toml has an
`[inbound]` table; the return path domain's MX, or a relay in front, delivers to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailpulse.feedback.intake import Intake

log = logging.getLogger("mailpulse.inbound")

TIMEOUT = 60.0  # seconds a peer may stay silent: a bounce needs no long thinking


class _Handler:
    def __init__(self, intake: Intake) -> None:
        self._intake = intake

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self._intake.recipient_refusal(address, len(envelope.rcpt_tos))
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):  # only with decode_data, which this listener does not set
            data = data.encode("utf-8", errors="surrogateescape")
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        return await self._intake.receive(list(envelope.rcpt_tos), data, peer)


class InboundListener:
    def __init__(
        self, intake: Intake, *, host: str, port: int, max_size: int, hostname: str
    ) -> None:
        self._intake = intake
        self._host = host
        self.port = port  # the one bound, once started (port 0 picks a free one)
        self._max_size = max_size
        self._hostname = hostname
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        handler = _Handler(self._intake)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                handler,
                hostname=self._hostname,
                ident="mailpulse inbound",
                data_size_limit=self._max_size,
                enable_SMTPUTF8=True,
                timeout=TIMEOUT,
            ),
            self._host,
            self.port,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("inbound SMTP listening on %s:%s", self._host, self.port)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 2)
        self._server = None
