"""The mail hosts of recipient domains (RFC 5321 §5.1), looked up in DNS without blocking the
event loop and kept for as long as their records say.

A domain's mail hosts are its MX hosts by preference; without MX records, the domain itself
(the implicit MX) if it has an address. A null MX (RFC 7505: one record, `0 .`) says the domain
takes no mail. A domain that does not exist has no mail hosts. Answers are kept for their TTL,
answers without records for NEGATIVE_TTL, failures (a timeout, SERVFAIL) for FAILURE_TTL, in a
cache of at most `max_entries` names; lookups of one name at once share one query.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mailpulse.delivery.mail_hosts import LookupFailed, MailHosts

NEGATIVE_TTL = 60.0  # seconds a domain without mail hosts or addresses is believed
FAILURE_TTL = 5.0  # seconds a failed lookup stands before it is tried again
MAX_TTL = 86400.0
MAX_ENTRIES = 10_000


_Entry = tuple[float, "MailHosts | tuple[str, ...] | LookupFailed"]


class MxResolver:
    """Mail hosts and addresses, from `nameservers` (by default the system's resolvers)."""

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] = (),
        *,
        timeout: float = 5.0,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nameservers = list(nameservers)
        self._timeout = timeout
        self._max_entries = max_entries
        self._clock = clock
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._asking: dict[tuple[str, str], asyncio.Future[_Entry]] = {}

    def _dns(self) -> dns.asyncresolver.Resolver:
        if self._resolver is None:
            try:
                resolver = dns.asyncresolver.Resolver(configure=not self._nameservers)
            except dns.resolver.NoResolverConfiguration as exc:
                raise LookupFailed(f"no DNS resolver configured: {exc}") from None
            if self._nameservers:
                resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(host, port) for host, port in self._nameservers
                ]
            resolver.lifetime = self._timeout
            self._resolver = resolver
        return self._resolver

    def cached(self, domain: str) -> MailHosts | None:
        """The mail hosts of `domain` if known now, without asking anyone."""
        entry = self._fresh(("MX", domain))
        return entry[1] if entry is not None and isinstance(entry[1], MailHosts) else None

    async def mail_hosts(self, domain: str) -> MailHosts:
        found = await self._lookup(("MX", domain), self._ask_mail_hosts)
        assert isinstance(found, MailHosts)
        return found

    async def addresses(self, host: str) -> tuple[str, ...]:
        """The IPv4 then IPv6 addresses of `host`; none when it has none."""
        found = await self._lookup(("A", host), self._ask_addresses)
        assert isinstance(found, tuple)
        return found

    def _fresh(self, key: tuple[str, str]) -> _Entry | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return entry

    async def _lookup(
        self, key: tuple[str, str], ask: Callable[[str], Awaitable[_Entry]]
    ) -> MailHosts | tuple[str, ...]:
        entry = self._fresh(key)
        if entry is None:
            asking = self._asking.get(key)
            if asking is None:
                asking = asyncio.ensure_future(self._ask_and_keep(key, ask))
                self._asking[key] = asking
                asking.add_done_callback(lambda _: self._asking.pop(key, None))
            entry = await asyncio.shield(asking)
        if isinstance(entry[1], LookupFailed):
            raise entry[1]
        return entry[1]

    async def _ask_and_keep(
        self, key: tuple[str, str], ask: Callable[[str], Awaitable[_Entry]]
    ) -> _Entry:
        try:
            ttl, found = await ask(key[1])
        except LookupFailed as exc:
            ttl, found = FAILURE_TTL, exc
        entry = (self._clock() + min(ttl, MAX_TTL), found)
        self._cache[key] = entry
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return entry

    async def _query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        """The answer, or None when the name has no such records or does not exist."""
        try:
            return await self._dns().resolve(name, rdtype, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.exception.DNSException, OSError) as exc:
            raise LookupFailed(f"{rdtype} lookup of {name} failed: {exc}") from None

    async def _ask_mail_hosts(self, domain: str) -> _Entry:
        answer = await self._query(domain, "MX")
        if answer is None or answer.rrset is None:
            # No MX: the domain itself, if it has an address (RFC 5321 §5.1 implicit MX).
            has_address = bool(await self.addresses(domain))
            return NEGATIVE_TTL, MailHosts((domain,) if has_address else ())
        records = sorted(answer.rrset, key=lambda r: (r.preference, str(r.exchange)))
        if len(records) == 1 and records[0].exchange == dns.name.root:
            return answer.rrset.ttl, MailHosts((), null=True)
        hosts = tuple(
            dict.fromkeys(
                r.exchange.to_text(omit_final_dot=True).lower()
                for r in records
                if r.exchange != dns.name.root
            )
        )
        return answer.rrset.ttl, MailHosts(hosts)

    async def _ask_addresses(self, host: str) -> _Entry:
        found: list[str] = []
        ttls: list[float] = []
        for rdtype in ("A", "AAAA"):
            answer = await self._query(host, rdtype)
            if answer is not None and answer.rrset is not None:
                found += [r.address for r in answer.rrset]
                ttls.append(answer.rrset.ttl)
        return min(ttls, default=NEGATIVE_TTL), tuple(found)
