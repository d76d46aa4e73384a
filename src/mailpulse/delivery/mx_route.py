"""Direct-to-MX delivery: each recipient domain's mail goes to its own mail hosts.

The hosts are tried by preference, each of their addresses in turn, moving on only when one
gives no answer at all (refused, timed out): a host that answers has decided. A domain with a
null MX (RFC 7505) takes no mail, and one that does not exist or has no mail host has nowhere
to take it: both bounce at once. A DNS failure is a deferral, retried like any other.

Connections are pooled per site (the shaping destination, so the domains one MX rule covers
share their connections, or else the recipient domain) and address, each pool sized by the
site's rule (`connections`, `messages_per_connection`) or the defaults. STARTTLS is used when
offered, unverified unless asked for, as MTAs do between each other. A pool nobody has used
for IDLE_AFTER seconds is closed, so that mail to many domains does not keep them all.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailpulse.delivery.mail_hosts import LookupFailed
from mailpulse.delivery.mx import MxResolver
from mailpulse.delivery.shaping import Shaping, recipient_domain
from mailpulse.delivery.smtp import OpenTransaction, SmtpRelay, delivery_result
from mailpulse.types import DeliveryResult, DeliveryStatus

IDLE_AFTER = 60.0  # seconds


@dataclass(frozen=True)
class MxSettings:
    port: int = 25
    max_connections: int = 10
    max_messages_per_connection: int = 100
    tls_verify: bool = False
    timeout: float = 30.0
    helo_name: str | None = None


def _unanswered(result: DeliveryResult) -> bool:
    """Nothing was said by the host (refused, timed out, cut off): another may do better."""
    return result.status == DeliveryStatus.DEFERRED and result.code == 0


class MxRoute:
    """A `Transport` (see mailpulse.runtime.courier) to every recipient domain's MX hosts."""

    def __init__(
        self,
        resolver: MxResolver,
        shaping: Shaping,
        settings: MxSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resolver = resolver
        self._shaping = shaping
        self._settings = settings
        self._clock = clock
        self._helo_name = settings.helo_name or socket.getfqdn()
        self._pools: dict[tuple[str, str], SmtpRelay] = {}
        self._used: dict[tuple[str, str], float] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._swept = clock()
        self._tls: ssl.SSLContext | None = None

    def has_free_connection(self) -> bool:
        # Which pool a transaction would use is known only after a DNS look-up: nothing is
        # opened ahead of its submit.
        return False

    async def begin(
        self, key: str, mail_from: str, rcpt_to: str
    ) -> OpenTransaction | DeliveryResult:
        domain = recipient_domain(rcpt_to)
        try:
            found = await self._resolver.mail_hosts(domain)
        except LookupFailed as exc:
            return delivery_result(key, DeliveryStatus.DEFERRED, 0, "4.4.3", str(exc))
        if found.null:
            text = f"{domain} accepts no mail (null MX, RFC 7505)"
            return delivery_result(key, DeliveryStatus.BOUNCED, 556, "5.1.10", text)
        if not found.hosts:
            text = f"{domain} has no mail host (no MX, no address)"
            return delivery_result(key, DeliveryStatus.BOUNCED, 550, "5.1.2", text)
        destination = self._shaping.destination(rcpt_to, found.hosts)
        site = destination.key if destination is not None else domain
        settings = self._settings
        rule = destination.rule if destination is not None else None
        connections = (rule and rule.connections) or settings.max_connections
        per_connection = (rule and rule.messages_per_connection) or (
            settings.max_messages_per_connection
        )
        self._sweep()
        last = delivery_result(
            key, DeliveryStatus.DEFERRED, 0, "4.4.1", f"no mail host of {domain}"
        )
        for host in found.hosts:
            try:
                addresses = await self._resolver.addresses(host)
            except LookupFailed as exc:
                last = delivery_result(key, DeliveryStatus.DEFERRED, 0, "4.4.3", str(exc))
                continue
            for address in addresses:
                pool = self._pool(site, host, address, connections, per_connection)
                opened = await pool.begin(key, mail_from, rcpt_to)
                if isinstance(opened, OpenTransaction) or not _unanswered(opened):
                    return opened
                last = opened
        return last

    def _pool(
        self, site: str, host: str, address: str, connections: int, per_connection: int
    ) -> SmtpRelay:
        where = (site, address)
        self._used[where] = self._clock()
        pool = self._pools.get(where)
        if pool is None:
            settings = self._settings
            pool = self._pools[where] = SmtpRelay(
                address,
                settings.port,
                helo_name=self._helo_name,
                ssl_context=self._tls_context(),
                max_connections=connections,
                max_messages_per_connection=per_connection,
                timeout=settings.timeout,
                server_name=host,
            )
        return pool

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
            if not self._settings.tls_verify:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE
        return self._tls

    def _sweep(self) -> None:
        """Closes the pools that have had nothing to do for IDLE_AFTER seconds."""
        now = self._clock()
        if now - self._swept < IDLE_AFTER / 2:
            return
        self._swept = now
        for where, used in list(self._used.items()):
            pool = self._pools[where]
            if now - used >= IDLE_AFTER and pool.in_flight == 0:
                del self._pools[where], self._used[where]
                task = asyncio.ensure_future(pool.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        self._used.clear()
        await asyncio.gather(*(pool.close() for pool in pools), *self._closing)
