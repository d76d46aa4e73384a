"""From a send intent to an SMTP reply: render, build, sign, transmit.

A `Courier` does that whole leg and answers with what happened; it never raises for an SMTP
4xx/5xx. `LocalCourier` does it on the caller's event loop; `CourierProcess` (in
`courier_process.py`) runs a `LocalCourier` in a child process so the work uses a core of its
own instead of the event loop that takes events in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from mailpulse.delivery import DkimSigner, build_message, make_message_id
from mailpulse.errors import RenderError
from mailpulse.render import TemplateLibrary
from mailpulse.types import DeliveryResult, RenderedMessage, SendIntent


class Delivered(msgspec.Struct, kw_only=True):
    """The outcome of one intent. `error` (with no result) means the message could not be made
    (a template failing for this recipient): that is final, retrying cannot help."""

    message_id: str
    result: DeliveryResult | None = None
    error: str = ""
    render_s: float = 0.0
    sign_s: float = 0.0
    smtp_s: float = 0.0


class Courier(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...

    def submit(self, intent: SendIntent) -> Awaitable[Delivered]:
        """Start delivering now (no waiting for the next turn of the loop); await the result."""
        ...


class Transport(Protocol):
    async def send(self, message: RenderedMessage) -> DeliveryResult: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class SenderIdentity:
    from_addr: str
    return_path: str
    message_id_domain: str
    feedback_id: str
    project: dict[str, Any]


class MessageFactory:
    """Template + intent → signed RFC 5322 bytes. Same key, same Message-ID."""

    def __init__(
        self,
        templates: TemplateLibrary,
        signer: DkimSigner | None,
        identity: SenderIdentity,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._templates = templates
        self._signer = signer
        self._identity = identity
        self._clock = clock

    def make(self, intent: SendIntent) -> tuple[RenderedMessage, float, float]:
        """The message, and the seconds spent rendering and signing it."""
        ident = self._identity
        message_id = make_message_id(intent.key, ident.message_id_domain)
        t0 = time.perf_counter()
        context = dict(intent.context)
        context["project"] = ident.project
        context["message_id"] = message_id
        context.setdefault("unsubscribe_url", f"{ident.project.get('url', '')}/unsubscribe")
        content = self._templates.get(intent.template).render(context)
        headers = {"X-Mailpulse-Key": intent.key}
        if ident.feedback_id:
            headers["Feedback-ID"] = ident.feedback_id
        data = build_message(
            content,
            from_addr=ident.from_addr,
            to_addr=intent.email,
            message_id=message_id,
            date=self._clock(),
            headers=headers,
        )
        t1 = time.perf_counter()
        if self._signer is not None:
            data = self._signer.sign(data)
        message = RenderedMessage(
            key=intent.key,
            message_id=message_id,
            mail_from=ident.return_path,
            rcpt_to=intent.email,
            data=data,
        )
        return message, t1 - t0, time.perf_counter() - t1


class LocalCourier:
    def __init__(self, factory: MessageFactory, transport: Transport) -> None:
        self._factory = factory
        self._transport = transport

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await self._transport.close()

    def submit(self, intent: SendIntent) -> Awaitable[Delivered]:
        try:
            message, render_s, sign_s = self._factory.make(intent)
        except (RenderError, KeyError) as exc:
            failed: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
            failed.set_result(Delivered(message_id="", error=str(exc)))
            return failed
        return asyncio.ensure_future(self._transmit(message, render_s, sign_s))

    async def _transmit(
        self, message: RenderedMessage, render_s: float, sign_s: float
    ) -> Delivered:
        t0 = time.perf_counter()
        result = await self._transport.send(message)
        return Delivered(
            message_id=message.message_id,
            result=result,
            render_s=render_s,
            sign_s=sign_s,
            smtp_s=time.perf_counter() - t0,
        )
