"""Mail hosts from a real DNS server over UDP: preference order, implicit and null MX, and a
cache that honours TTLs, keeps misses briefly and stays bounded."""

from __future__ import annotations

import asyncio

import pytest

from mailpulse.delivery.mail_hosts import LookupFailed, MailHosts, nameserver
from mailpulse.delivery.mx import FAILURE_TTL, NEGATIVE_TTL, MxResolver
from tests.dns_server import DnsServer

ZONE = {
    "shop.test": {"mx": [(20, "mx2.shop.test"), (10, "MX1.shop.test")]},
    "mx1.shop.test": {"a": ["127.0.0.1"], "aaaa": ["::1"]},
    "bare.test": {"a": ["127.0.0.2"]},
    "nomail.test": {"mx": [(0, ".")]},
    "empty.test": {"txt": ["nothing here"]},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def resolver_for(server: DnsServer, clock: Clock | None = None, **kw: int) -> MxResolver:
    return MxResolver([nameserver(server.address)], timeout=2.0, clock=clock or Clock(), **kw)


@pytest.fixture
def zone(dns_server: DnsServer) -> DnsServer:
    dns_server.zone.update(ZONE)
    return dns_server


async def test_mail_hosts_by_preference(zone: DnsServer) -> None:
    resolver = resolver_for(zone)
    assert await resolver.mail_hosts("shop.test") == MailHosts(("mx1.shop.test", "mx2.shop.test"))
    assert await resolver.addresses("mx1.shop.test") == ("127.0.0.1", "::1")


async def test_without_mx_the_domain_itself_if_it_has_an_address(zone: DnsServer) -> None:
    resolver = resolver_for(zone)
    assert await resolver.mail_hosts("bare.test") == MailHosts(("bare.test",))
    assert await resolver.mail_hosts("empty.test") == MailHosts(())


async def test_a_null_mx_and_a_missing_domain(zone: DnsServer) -> None:
    resolver = resolver_for(zone)
    assert await resolver.mail_hosts("nomail.test") == MailHosts((), null=True)
    assert await resolver.mail_hosts("missing.test") == MailHosts(())


async def test_answers_are_kept_for_their_ttl(zone: DnsServer) -> None:
    clock = Clock()
    resolver = resolver_for(zone, clock)
    assert resolver.cached("shop.test") is None
    await asyncio.gather(*(resolver.mail_hosts("shop.test") for _ in range(5)))
    assert zone.asked[("shop.test", "mx")] == 1  # one query for lookups at once
    assert resolver.cached("shop.test") is not None
    clock.now += zone.ttl - 1
    await resolver.mail_hosts("shop.test")
    assert zone.asked[("shop.test", "mx")] == 1
    clock.now += 2
    assert resolver.cached("shop.test") is None
    await resolver.mail_hosts("shop.test")
    assert zone.asked[("shop.test", "mx")] == 2


async def test_misses_and_failures_are_kept_briefly(zone: DnsServer) -> None:
    clock = Clock()
    resolver = resolver_for(zone, clock)
    zone.failing.add("down.test")
    for _ in range(2):
        with pytest.raises(LookupFailed):
            await resolver.mail_hosts("down.test")
        await resolver.mail_hosts("missing.test")
    # SERVFAIL makes the stub resolver try again itself; what counts is that the second
    # lookup asked nobody.
    asked_down = zone.asked[("down.test", "mx")]
    assert zone.asked[("missing.test", "mx")] == 1
    clock.now += FAILURE_TTL + 1
    with pytest.raises(LookupFailed):
        await resolver.mail_hosts("down.test")
    assert zone.asked[("down.test", "mx")] > asked_down
    await resolver.mail_hosts("missing.test")
    assert zone.asked[("missing.test", "mx")] == 1
    clock.now += NEGATIVE_TTL
    await resolver.mail_hosts("missing.test")
    assert zone.asked[("missing.test", "mx")] == 2


async def test_the_cache_is_bounded(zone: DnsServer) -> None:
    resolver = resolver_for(zone, max_entries=3)
    for n in range(6):
        zone.zone[f"d{n}.test"] = {"mx": [(10, "mx1.shop.test")]}
        await resolver.mail_hosts(f"d{n}.test")
    assert len(resolver._cache) == 3
    assert resolver.cached("d0.test") is None and resolver.cached("d5.test") is not None


async def test_no_answer_at_all_is_a_failure() -> None:
    silent = MxResolver([("127.0.0.1", 9)], timeout=0.3)  # the discard port: nobody answers
    with pytest.raises(LookupFailed):
        await silent.mail_hosts("shop.test")


@pytest.mark.parametrize(
    ("written", "parsed"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        (" 10.0.0.2:5353 ", ("10.0.0.2", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("[2001:db8::1]", ("2001:db8::1", 53)),
        ("2001:db8::1", ("2001:db8::1", 53)),
    ],
)
def test_nameservers_are_written_as_addresses(written: str, parsed: tuple[str, int]) -> None:
    assert nameserver(written) == parsed


@pytest.mark.parametrize("bad", ["", "dns.google", "1.1.1.1:x", "1.1.1.1:70000", "[::1]53"])
def test_a_nameserver_must_be_an_address(bad: str) -> None:
    with pytest.raises(ValueError):
        nameserver(bad)
