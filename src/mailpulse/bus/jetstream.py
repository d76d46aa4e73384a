"""The bus on NATS JetStream, for scale-out: partitions survive a worker and a server restart.

Layout: one stream named after the prefix, file storage, work-queue retention, subjects
`<prefix>.<subject>.<partition>`. Each subject+partition has one durable pull consumer named
`<prefix>-<subject>-<partition>`, so a worker that takes a partition over continues the consumer
its previous owner left, unacknowledged items included. An item leaves the stream once acked.

Acks. `next_batch` acknowledges the previous batch of the same subject+partition when it is
called again: asking for more is how the caller says it has finished with the last batch. The
acks and the pull request go out together, the request riding on the last ack (`+NXT`), so the
server has processed every ack before it hands out anything new. A batch that is never acked
(its consumer died, or closed without asking again) is redelivered after `ack_wait` to whoever
pulls the partition next. Nothing is ever given up on: `max_deliver` is unlimited.

Order. With one live consumer per partition, items come in stream order, which for one key is
publish order (a publisher awaits each PubAck). No redelivery happens in that case even when a
batch takes longer than `ack_wait`: the server delivers only into a pending pull, and it takes
a batch's acks before the pull they ride with. Order can break only around a redelivery. After
a consumer died holding a batch, its successor first gets the items published after that batch
and, once `ack_wait` has passed, the batch itself, in its own order. Items that arrive for a
pull after `next_batch` stopped waiting for it (a server or network hiccup) open the next
batch, ahead of anything newer; had they waited there past `ack_wait`, they may come again.
Either way every item comes at least once and some may come twice; the store is the authority
(the fold drops offsets at or below its checkpoint and reads the log across a gap, the sender
skips keys it holds), which makes the replay harmless.

Outages. The client reconnects by itself, forever. `publish` waits for the server up to
`publish_timeout` and then raises `BusUnavailable`; its retries carry one message id, so the
stream keeps one copy even when an earlier attempt was stored after all. `next_batch` never
raises for an outage: it returns [] once `max_wait` has passed (or after a short pause when
`max_wait` is None) and carries on once the server is back, with every item the server had
acknowledged with a PubAck. (A PubAck means written, not fsynced: a lone server killed outright,
rather than stopped, may lose its last writes. `replicas=3`, or the server's `sync_interval:
always`, closes that gap; and the store still holds the work.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    Header,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from mailpulse.bus.interface import BusUnavailable, partition_of

log = logging.getLogger(__name__)

# Stream, consumer and subject tokens: no dots or wildcards, which NATS reserves.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")

# The bus only carries work already durable in the store, and a consumer that (re)starts
# catches up from the store, so dropping items a day old keeps a stream whose consumers are
# gone from filling the disk at no loss. (Should a live consumer fall that far behind, the fold
# reads the gap from the log, the sender finds the rows when it next recovers.)
DEFAULT_MAX_AGE = 24 * 3600.0
# Covers every retry of one publish (bounded by publish_timeout) so the stream keeps one copy.
_DUPLICATE_WINDOW = 120.0
# The server hands a consumer at most this many unacked items. A consumer holds one batch at a
# time, so this only caps the batch size; the fold asks for 2,000.
_MAX_ACK_PENDING = 20_000
# A PubAck that takes longer than this is asked for again (same message id) rather than
# awaited: an attempt whose connection dropped would otherwise wait for the whole timeout.
_PUBLISH_ATTEMPT = 1.0
# Between attempts while the server is unreachable or JetStream is still starting.
_RETRY_PAUSE = 0.1
# With max_wait None a pull still expires now and then, so a lost one is noticed.
_LONG_POLL = 5.0
# With max_wait None and the server down, next_batch returns [] after this long.
_OUTAGE_WAIT = 1.0
# How long after a pull's expiry its end-of-pull status may still be on the wire.
_STATUS_GRACE = 0.5
# Shorter waits ask without `expires`: the server answers at once.
_MIN_EXPIRES = 0.001

_NO_MESSAGES = "404"
_PULL_EXPIRED = "408"


async def _unsubscribe(subscription: Subscription) -> None:
    with contextlib.suppress(nats.errors.Error):
        await subscription.unsubscribe()


class _Unreachable(Exception):
    """Not connected, or JetStream refused the pull: wait for it and try again."""


def _status(msg: Msg) -> str | None:
    """The status code of a control message from the server; None for an item."""
    return msg.headers.get(Header.STATUS.value) if msg.headers else None


@dataclass(eq=False)
class _Consumer:
    """This instance's side of one durable pull consumer."""

    name: str
    filter_subject: str
    inbox: str
    # Everything delivered to the inbox, in arrival order; None: the connection dropped, so the
    # pull in flight died with it.
    arrivals: asyncio.Queue[Msg | None]
    created: bool = False
    pulls: int = 0
    unacked: list[Msg] = field(default_factory=list)
    # Released: this process no longer works on the partition; late deliveries go back.
    released: bool = False
    subscription: Subscription | None = None

    async def arrive(self, msg: Msg) -> None:
        if self.released and _status(msg) is None:
            await msg.nak()
        else:
            self.arrivals.put_nowait(msg)


class JetStreamBus:
    """`item_types` maps each subject to the msgspec type its items decode to; `prefix` names
    the stream and starts its subjects; `replicas` is 3 on a real JetStream cluster. The
    timeouts and `ack_wait` are in seconds. Call `open()` before anything else.
    """

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        partitions: int,
        item_types: Mapping[str, Any],
        prefix: str = "mailpulse",
        replicas: int = 1,
        ack_wait: float = 5.0,
        max_age: float = DEFAULT_MAX_AGE,
        publish_timeout: float = 5.0,
        connect_timeout: float = 5.0,
        reconnect_wait: float = 0.5,
    ) -> None:
        if partitions < 1:
            raise ValueError("a bus needs at least one partition")
        for token in (prefix, *item_types):
            if not _TOKEN.match(token):
                raise ValueError(f"{token!r}: prefix and subjects may use A-Z a-z 0-9 _ - only")
        self.partitions = partitions
        self._servers = [servers] if isinstance(servers, str) else list(servers)
        self._prefix = prefix
        self._replicas = replicas
        self._ack_wait = ack_wait
        self._max_age = max_age
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._reconnect_wait = reconnect_wait
        self._encoder = msgspec.json.Encoder()
        self._decoders = {s: msgspec.json.Decoder(t) for s, t in item_types.items()}
        self._nc = Client()
        self._js: JetStreamContext | None = None
        self._connected = asyncio.Event()
        self._consumers: dict[tuple[str, int], _Consumer] = {}

    @property
    def stream(self) -> str:
        return self._prefix

    @property
    def connected(self) -> bool:
        return self._nc.is_connected

    async def open(self) -> None:
        """Connects and creates the stream, or brings an existing one to this configuration."""
        try:
            # Reconnection never gives up, which also makes a first connect retry forever:
            # bound it here.
            await asyncio.wait_for(
                self._nc.connect(
                    servers=self._servers,
                    name=f"mailpulse-bus-{self._prefix}",
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self._reconnect_wait,
                    connect_timeout=self._connect_timeout,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                ),
                self._connect_timeout,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await self._nc.close()
            raise BusUnavailable(f"no NATS server at {', '.join(self._servers)}") from exc
        self._connected.set()
        self._js = self._nc.jetstream()
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self._prefix}.*.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=self._replicas,
            max_age=self._max_age,
            duplicate_window=_DUPLICATE_WINDOW,
        )
        try:
            await self._js.update_stream(config)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(config)

    async def publish(self, subject: str, key: str, item: Any) -> None:
        self._decoder(subject)  # an unknown subject fails here rather than at a consumer
        js = self._jetstream()
        target = f"{self._prefix}.{subject}.{partition_of(key, self.partitions)}"
        payload = self._encoder.encode(item)
        headers = {Header.MSG_ID.value: uuid.uuid4().hex}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._publish_timeout
        while True:
            try:
                await self._until_connected(deadline - loop.time())
                attempt = min(_PUBLISH_ATTEMPT, deadline - loop.time())
                await js.publish(target, payload, timeout=attempt, headers=headers)
                return
            except (TimeoutError, nats.errors.Error) as exc:
                if loop.time() + _RETRY_PAUSE >= deadline:
                    raise BusUnavailable(
                        f"{target}: not stored within {self._publish_timeout:g}s ({exc!r})"
                    ) from exc
            await asyncio.sleep(_RETRY_PAUSE)

    async def next_batch(
        self, subject: str, partition: int, max_items: int, max_wait: float | None
    ) -> list[Any]:
        decoder = self._decoder(subject)
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not in 0..{self.partitions - 1}")
        if not 1 <= max_items <= _MAX_ACK_PENDING:
            raise ValueError(f"a batch holds 1 to {_MAX_ACK_PENDING} items, not {max_items}")
        loop = asyncio.get_running_loop()
        deadline = None if max_wait is None else loop.time() + max_wait
        while True:
            try:
                msgs = await self._pull(subject, partition, max_items, deadline)
            except (_Unreachable, TimeoutError, nats.errors.Error) as exc:
                log.debug("bus: pull on %s.%s failed: %r", subject, partition, exc)
                await self._recover(deadline)
                if deadline is None:
                    return []
                msgs = []
            items = []
            for msg in msgs:
                try:
                    items.append(decoder.decode(msg.data))
                except msgspec.DecodeError as exc:
                    # Acked with its batch: one bad item must not hold its partition forever.
                    log.error(
                        "bus: undecodable item on %s dropped (%s): %r", msg.subject, exc, msg.data
                    )
            if items or (deadline is not None and loop.time() >= deadline):
                return items

    async def release(self, partition: int) -> None:
        """Hands back (-NAK: redeliver now) every item of `partition` this process holds:
        the last batches, finished or not (the store tells a repeat), and whatever a pull
        still open delivers until it expires. The next owner gets them at once rather than
        after `ack_wait`."""
        for subject in self._decoders:
            consumer = self._consumers.pop((subject, partition), None)
            if consumer is None:
                continue
            consumer.released = True
            held = consumer.unacked + self._take_arrivals(consumer, _MAX_ACK_PENDING)
            consumer.unacked = []
            with contextlib.suppress(nats.errors.Error):
                for msg in held:
                    await msg.nak()
            if consumer.subscription is not None:
                # Kept until the open pull has surely expired, to hand back its deliveries.
                asyncio.get_running_loop().call_later(
                    _LONG_POLL + _STATUS_GRACE,
                    lambda sub=consumer.subscription: asyncio.ensure_future(_unsubscribe(sub)),
                )

    async def close(self) -> None:
        """Leaves the last batch of each partition unacked: nothing says the caller finished
        it, so it goes to the next owner after `ack_wait`."""
        for consumer in self._consumers.values():
            consumer.arrivals.put_nowait(None)
        self._consumers.clear()
        self._js = None
        self._connected.clear()
        await self._nc.close()

    # -- pulling -------------------------------------------------------------------------

    async def _pull(
        self, subject: str, partition: int, max_items: int, deadline: float | None
    ) -> list[Msg]:
        if not self._nc.is_connected:
            raise _Unreachable("not connected")
        consumer = await self._consumer(subject, partition)
        late = self._take_arrivals(consumer, max_items)
        if late:
            # Delivered for a pull we stopped waiting for: they are ours, in order, and come
            # before anything a new pull would bring.
            await self._ack(consumer.unacked)
            consumer.unacked = late
            return late
        loop = asyncio.get_running_loop()
        remaining = _LONG_POLL if deadline is None else max(0.0, deadline - loop.time())
        consumer.pulls += 1
        reply = f"{consumer.inbox}.{consumer.pulls}"
        request: dict[str, Any] = {"batch": max_items, "no_wait": True}
        if remaining >= _MIN_EXPIRES:
            # With no_wait, the pull waits up to `expires` for the first items, then returns
            # with what is there rather than waiting to fill the batch.
            request["expires"] = int(remaining * 1e9)
        await self._request(consumer, json.dumps(request).encode(), reply)
        # Unacked from its first item: a caller that stops waiting (cancelled) leaves them
        # for `release` to hand back.
        batch: list[Msg] = []
        consumer.unacked = batch
        give_up = loop.time() + remaining + _STATUS_GRACE
        while len(batch) < max_items:
            try:
                # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that
                # lands as an item arrives, and a partition being stopped would run on.
                async with asyncio.timeout_at(give_up):
                    msg = await consumer.arrivals.get()
            except TimeoutError:
                break
            if msg is None:
                break
            status = _status(msg)
            if status is None:
                batch.append(msg)
            elif msg.subject == reply:
                if status not in (_NO_MESSAGES, _PULL_EXPIRED):
                    # 409 (consumer deleted, leader changed, ...) or 503 (JetStream not up
                    # yet): make sure of the consumer again before the next pull.
                    consumer.created = False
                    if not batch:
                        description = msg.headers.get(Header.DESCRIPTION.value, "")
                        raise _Unreachable(f"{consumer.name}: {status} {description}")
                break
        consumer.unacked = batch
        return batch

    async def _consumer(self, subject: str, partition: int) -> _Consumer:
        consumer = self._consumers.get((subject, partition))
        if consumer is None:
            consumer = _Consumer(
                name=f"{self._prefix}-{subject}-{partition}",
                filter_subject=f"{self._prefix}.{subject}.{partition}",
                inbox=self._nc.new_inbox(),
                arrivals=asyncio.Queue(),
            )
            # Each pull replies to its own subject under the inbox, so a status that ends
            # an earlier pull cannot be taken for the end of the current one.
            consumer.subscription = await self._nc.subscribe(
                f"{consumer.inbox}.*", cb=consumer.arrive
            )
            self._consumers[(subject, partition)] = consumer
        if not consumer.created:
            await self._jetstream().add_consumer(
                self.stream,
                ConsumerConfig(
                    name=consumer.name,
                    durable_name=consumer.name,
                    filter_subject=consumer.filter_subject,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=self._ack_wait,
                    max_deliver=-1,
                    max_ack_pending=_MAX_ACK_PENDING,
                ),
            )
            consumer.created = True
        return consumer

    @staticmethod
    def _take_arrivals(consumer: _Consumer, max_items: int) -> list[Msg]:
        """Items already delivered, without waiting; stale statuses and markers go."""
        taken: list[Msg] = []
        while len(taken) < max_items and not consumer.arrivals.empty():
            msg = consumer.arrivals.get_nowait()
            if msg is not None and _status(msg) is None:
                taken.append(msg)
        return taken

    async def _request(self, consumer: _Consumer, request: bytes, reply: str) -> None:
        """Acks the previous batch and asks for the next; the server takes the acks first."""
        if consumer.unacked:
            *done, last = consumer.unacked
            await self._ack(done)
            await self._nc.publish(last.reply, b"+NXT " + request, reply=reply)
        else:
            next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{consumer.name}"
            await self._nc.publish(next_subject, request, reply=reply)
        consumer.unacked = []

    async def _ack(self, msgs: list[Msg]) -> None:
        # An empty message to the reply subject is an ack. One that gets lost only means a
        # redelivery, which is harmless, so none is awaited.
        for msg in msgs:
            await self._nc.publish(msg.reply)

    async def _recover(self, deadline: float | None) -> None:
        """After a failed pull: waits for the server to come back, or a little when it is up
        but refused (JetStream still starting), never past the deadline."""
        loop = asyncio.get_running_loop()
        wait = _OUTAGE_WAIT if deadline is None else deadline - loop.time()
        if self._nc.is_connected:
            wait = min(wait, _RETRY_PAUSE)
            if wait > 0:
                await asyncio.sleep(wait)
            return
        with contextlib.suppress(TimeoutError):
            await self._until_connected(wait)

    def _decoder(self, subject: str) -> msgspec.json.Decoder[Any]:
        decoder = self._decoders.get(subject)
        if decoder is None:
            raise ValueError(f"subject {subject!r} has no item type on this bus")
        return decoder

    # -- connection ----------------------------------------------------------------------

    async def _until_connected(self, within: float) -> None:
        if not self._nc.is_connected:
            # The client knows before our callback has run; a publish now would wait in its
            # buffer and go out after the reconnect, long after we gave up on it.
            self._connected.clear()
        async with asyncio.timeout(within):  # not wait_for: see _pull
            await self._connected.wait()

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError(
                "the bus is not connected: open() it first; a closed bus stays closed"
            )
        return self._js

    async def _on_disconnected(self) -> None:
        if self._js is not None:  # not our own close()
            log.warning("bus: lost the NATS server; reconnecting")
        self._connected.clear()
        for consumer in self._consumers.values():
            consumer.arrivals.put_nowait(None)

    async def _on_reconnected(self) -> None:
        url = self._nc.connected_url
        log.warning("bus: reconnected to %s", url.netloc if url else "?")
        self._connected.set()

    async def _on_error(self, exc: Exception) -> None:
        log.debug("bus: NATS client error: %r", exc)
