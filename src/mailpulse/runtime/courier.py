"""From a send intent to an SMTP reply: render, build, sign, transmit.

A `Courier` does that whole leg and answers with what happened; it never raises for an SMTP
4xx/5xx. `LocalCourier` does it on the caller's event loop; `CourierProcess` (in
`courier_process.py`) runs a `LocalCourier` in a child process so the work uses a core of its
own instead of the event loop that takes events in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from mailpulse.catalog import CatalogReader, CatalogUnavailable, ItemKey
from mailpulse.catalog.lookup import MAX_ROUNDS, NeedItems, RenderCatalog, fetch_fields
from mailpulse.delivery import DkimSigner, OpenTransaction, build_message
from mailpulse.delivery.esp import echo_headers
from mailpulse.delivery.mime import key_digest, message_id_of
from mailpulse.errors import RenderError
from mailpulse.feedback.unsubscribe import NO_LINKS, SubscriptionLinks
from mailpulse.feedback.verp import ReturnPath
from mailpulse.render import TemplateLibrary
from mailpulse.render.tracking import NO_TRACKING, Tracking
from mailpulse.tokens import TokenSigner
from mailpulse.types import DeliveryResult, DeliveryStatus, RenderedMessage, SendIntent


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

    def prepare(self, intent: SendIntent) -> None:
        """A hint that `intent` is about to be submitted: do what has no effect outside
        (render, sign, open the SMTP transaction up to DATA) ahead of time. The hint may be
        wrong: an intent never submitted is dropped unsent."""
        ...

    def submit(self, intent: SendIntent) -> Awaitable[Delivered]:
        """Start delivering now (no waiting for the next turn of the loop); await the result."""
        ...


class Transport(Protocol):
    def has_free_connection(self) -> bool: ...
    async def begin(
        self, key: str, mail_from: str, rcpt_to: str
    ) -> OpenTransaction | DeliveryResult: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class SenderIdentity:
    from_addr: str
    return_path: str
    message_id_domain: str
    feedback_id: str
    project: dict[str, Any]
    # The ESPs whose webhooks report here: each message carries what makes them name it back
    # (mailpulse.delivery.esp).
    esp_webhooks: tuple[str, ...] = ()


class MessageFactory:
    """Template + intent → signed RFC 5322 bytes. Same key, same Message-ID.

    With a `catalog`, templates read its items as they are now (`catalog(name, id)`, see
    mailpulse.catalog.lookup): `make` renders with the items it is given and raises NeedItems
    for those it was not, `make_current` fetches them and renders again."""

    def __init__(
        self,
        templates: TemplateLibrary,
        signer: DkimSigner | None,
        identity: SenderIdentity,
        clock: Callable[[], float] = time.time,
        catalog: CatalogReader | None = None,
        tokens: TokenSigner | None = None,
        tracking: Tracking | None = None,
    ) -> None:
        """`tokens` signs the links and return paths of each message (mailpulse.tokens);
        `tracking`: what of each message is tracked (none without tokens)."""
        self._templates = templates
        self._tokens = tokens
        # Each message's unsubscribe and preference links, and its List-Unsubscribe fields.
        self._links = None
        if tokens is not None:
            mail_domain = identity.return_path.rpartition("@")[2]
            self._links = SubscriptionLinks(tokens, identity.project.get("url", ""), mail_domain)
        # Each message's envelope sender names its send (VERP), so its bounces find it.
        self._return_path = ReturnPath(tokens, identity.return_path) if tokens else None
        self._tracking = tracking if tokens is not None else None  # links need tokens
        self._signer = signer
        self._identity = identity
        self._clock = clock
        self._catalog = catalog

    async def make_current(
        self, intent: SendIntent, wanted: set[ItemKey] | None = None
    ) -> tuple[RenderedMessage, float, float]:
        """`make`, with the catalog items the template looks up (starting with `wanted`)
        fetched from the catalog for this message; CatalogUnavailable if it cannot be read."""
        fields: dict[ItemKey, dict[str, Any]] = {}
        if wanted and self._catalog is not None:
            await fetch_fields(self._catalog, wanted, fields)
        for attempt in range(MAX_ROUNDS):
            try:
                return self.make(intent, fields, final=attempt == MAX_ROUNDS - 1)
            except NeedItems as need:
                assert self._catalog is not None
                await fetch_fields(self._catalog, need.keys, fields)
        raise AssertionError("the last round asks for nothing")  # pragma: no cover

    def make(
        self,
        intent: SendIntent,
        items: dict[ItemKey, dict[str, Any]] | None = None,
        *,
        final: bool = False,
    ) -> tuple[RenderedMessage, float, float]:
        """The message, and the seconds spent rendering and signing it. NeedItems if the
        template asked for catalog items not in `items` (never when `final` or without a
        catalog: they count as missing)."""
        ident = self._identity
        digest = key_digest(intent.key)
        message_id = message_id_of(digest, ident.message_id_domain)
        t0 = time.perf_counter()
        made_at = self._clock()
        context = dict(intent.context)
        context["project"] = ident.project
        context["message_id"] = message_id
        links = self._links.of(intent) if self._links is not None else NO_LINKS
        context.update(links.context)
        lookup = RenderCatalog(items or {}, asking=self._catalog is not None and not final)
        context["catalog"] = lookup
        tracker = NO_TRACKING
        if self._tracking is not None:
            tracker = self._tracking.tracker(
                self._tokens, intent.key, intent.message_class, made_at
            )
        try:
            content = self._templates.get(intent.template).render(context, intent.subject, tracker)
        except RenderError:
            # It may have failed on an item it did not have yet (a price that was missing).
            if lookup.missing:
                raise NeedItems(lookup.missing) from None
            raise
        if lookup.missing:
            raise NeedItems(lookup.missing)
        headers = {"X-Mailpulse-Key": intent.key, **links.headers}
        if ident.esp_webhooks:
            headers.update(echo_headers(ident.esp_webhooks, intent.key))
        if ident.feedback_id:
            headers["Feedback-ID"] = ident.feedback_id
        data = build_message(
            content,
            from_addr=intent.sender or ident.from_addr,
            to_addr=intent.email,
            message_id=message_id,
            date=made_at,
            headers=headers,
        )
        t1 = time.perf_counter()
        if self._signer is not None:
            data = self._signer.sign(data)
        mail_from = ident.return_path
        if self._return_path is not None:
            mail_from = self._return_path.address(digest)
        message = RenderedMessage(
            key=intent.key,
            message_id=message_id,
            mail_from=mail_from,
            rcpt_to=intent.email,
            data=data,
        )
        return message, t1 - t0, time.perf_counter() - t1


# What makes a message impossible for its recipient, and retrying no help: the template failed
# for them (RenderError) or is gone (KeyError), or an address cannot be written into it
# (ValueError: one the log accepted, such as a non-ASCII local part, that needs SMTPUTF8).
_NOT_MAKEABLE = (RenderError, KeyError, ValueError)

PREPARED_FOR = 2.0  # seconds a prepared intent waits for its submit before it is dropped


@dataclass(frozen=True)
class _Wanting:
    """An intent whose template reads catalog items: made once they are fetched."""

    intent: SendIntent
    keys: set[ItemKey]


def _not_made(job: _Job) -> Delivered:
    if job.unavailable:
        # Not the message's fault: deferred, and retried like any other deferral.
        return Delivered(
            message_id="",
            result=DeliveryResult(
                key=job.intent.key,
                status=DeliveryStatus.DEFERRED,
                code=0,
                text=job.unavailable,
                at=time.time(),
            ),
        )
    return Delivered(message_id="", error=job.error)


@dataclass
class _Job:
    """One intent on its way: the signed message (or why it could not be made) and the
    transaction being opened for it."""

    intent: SendIntent
    message: RenderedMessage | None
    error: str
    render_s: float
    sign_s: float
    opening: asyncio.Task[OpenTransaction | DeliveryResult] | None = None
    expiry: asyncio.TimerHandle | None = None
    # Why it could not be made now, though it may be later (the catalog could not be read).
    unavailable: str = ""

    def drop(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        opening = self.opening
        if opening is None:
            return
        if not opening.done():
            opening.cancel()  # the relay closes a connection cancelled mid-conversation
        elif not opening.cancelled() and isinstance(opening.result(), OpenTransaction):
            opening.result().abandon()


class LocalCourier:
    """Renders, signs and transmits on the caller's loop.

    A prepared intent has its message made and its transaction opened up to DATA before it
    is submitted, so the submit costs only the content and its reply. Preparing yields to
    submits (it runs one intent per turn of the loop, behind whatever is waiting), and opens
    transactions only on spare connections: speculation never makes real work wait.

    A template that reads the catalog is made once its items are fetched; a prepared message
    shows them as they were at most PREPARED_FOR seconds before its submit."""

    def __init__(self, factory: MessageFactory, transport: Transport) -> None:
        self._factory = factory
        self._transport = transport
        self._to_prepare: dict[str, SendIntent] = {}
        self._prepared: dict[str, _Job] = {}
        self._preparing: asyncio.Task[None] | None = None
        self._fetching: set[str] = set()  # keys being prepared while their items are fetched

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        if self._preparing is not None:
            self._preparing.cancel()
        self._to_prepare.clear()
        prepared, self._prepared = self._prepared, {}
        for job in prepared.values():
            job.drop()
        await self._transport.close()

    def prepare(self, intent: SendIntent) -> None:
        if (
            intent.key in self._prepared
            or intent.key in self._to_prepare
            or intent.key in self._fetching
        ):
            return
        self._to_prepare[intent.key] = intent
        if self._preparing is None:
            self._preparing = asyncio.ensure_future(self._prepare_queued())

    async def _prepare_queued(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._to_prepare:
                key = next(iter(self._to_prepare))
                made = self._make(self._to_prepare.pop(key))
                if isinstance(made, _Wanting):
                    self._fetching.add(key)
                    job = await self._make_current(made)
                    if key not in self._fetching:
                        continue  # submitted meanwhile, and made afresh there
                    self._fetching.discard(key)
                else:
                    job = made
                if job.message is not None and self._transport.has_free_connection():
                    job.opening = self._open(job.message)
                job.expiry = loop.call_later(PREPARED_FOR, self._expire, key)
                self._prepared[key] = job
                await asyncio.sleep(0)  # submits that came in meanwhile go first
        finally:
            self._preparing = None

    def submit(self, intent: SendIntent) -> Awaitable[Delivered]:
        self._to_prepare.pop(intent.key, None)
        self._fetching.discard(intent.key)
        job = self._prepared.pop(intent.key, None)
        if job is not None and job.intent != intent:
            job.drop()  # prepared from an event that was rolled back: made afresh
            job = None
        if job is None:
            made = self._make(intent)
            if isinstance(made, _Wanting):
                return asyncio.ensure_future(self._make_and_send(made))
            job = made
        elif job.expiry is not None:
            job.expiry.cancel()
        return self._send(job)

    def _send(self, job: _Job) -> Awaitable[Delivered]:
        if job.message is None:
            failed: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
            failed.set_result(_not_made(job))
            return failed
        return asyncio.ensure_future(self._transmit(job, job.message))

    async def _make_and_send(self, wanting: _Wanting) -> Delivered:
        return await self._send(await self._make_current(wanting))

    def _make(self, intent: SendIntent) -> _Job | _Wanting:
        """The job, made at once; or, if its template reads catalog items, what to fetch."""
        try:
            message, render_s, sign_s = self._factory.make(intent)
        except NeedItems as need:
            return _Wanting(intent, need.keys)
        except _NOT_MAKEABLE as exc:
            return _Job(intent, None, str(exc), 0.0, 0.0)
        return _Job(intent, message, "", render_s, sign_s)

    async def _make_current(self, wanting: _Wanting) -> _Job:
        intent = wanting.intent
        try:
            message, render_s, sign_s = await self._factory.make_current(intent, wanting.keys)
        except CatalogUnavailable as exc:
            return _Job(intent, None, "", 0.0, 0.0, unavailable=f"catalog unavailable: {exc}")
        except _NOT_MAKEABLE as exc:
            return _Job(intent, None, str(exc), 0.0, 0.0)
        return _Job(intent, message, "", render_s, sign_s)

    def _begin(
        self, message: RenderedMessage
    ) -> Coroutine[Any, Any, OpenTransaction | DeliveryResult]:
        return self._transport.begin(message.key, message.mail_from, message.rcpt_to)

    def _open(self, message: RenderedMessage) -> asyncio.Task[OpenTransaction | DeliveryResult]:
        """The transaction opened in a task of its own, while the message waits for its submit."""
        return asyncio.ensure_future(self._begin(message))

    def _expire(self, key: str) -> None:
        job = self._prepared.pop(key, None)
        if job is not None:
            job.drop()

    async def _transmit(self, job: _Job, message: RenderedMessage) -> Delivered:
        t0 = time.perf_counter()
        try:
            # Opened while it was prepared, else in this task (not one of its own: one task
            # fewer per message).
            opened = await (job.opening if job.opening is not None else self._begin(message))
        except asyncio.CancelledError:
            job.drop()
            raise
        if isinstance(opened, OpenTransaction):
            # build_message and the DKIM signer end every line in CRLF.
            result = await opened.finish(message.data, crlf_only=True)
        else:
            result = opened
        return Delivered(
            message_id=message.message_id,
            result=result,
            render_s=job.render_s,
            sign_s=job.sign_s,
            smtp_s=time.perf_counter() - t0,
        )
