"""Shaping: which rule limits a recipient, and the in-process limiter keeping its rate."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.delivery.mail_hosts import nameserver
from mailpulse.delivery.mx import MxResolver
from mailpulse.delivery.shaping import (
    RESERVE_AHEAD,
    Backoff,
    ConnectionLimits,
    Destination,
    Destinations,
    LocalTimeline,
    RateLimiter,
    Shaping,
    ShapingRule,
    asks_to_slow_down,
    builtin_rules,
    mx_suffix,
    rule_domain,
)
from tests.dns_server import DnsServer

# -- rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "domain"),
    [
        ("gmail.com", "gmail.com"),
        (" Gmail.COM. ", "gmail.com"),
        ("*", "*"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("mx-1.example.org", "mx-1.example.org"),
    ],
)
def test_rule_domains_are_compared_in_one_form(written: str, domain: str) -> None:
    assert rule_domain(written) == domain


@pytest.mark.parametrize("bad", ["", "*.gmail.com", "exa mple.com", "-x.com", "a..b", "a_b.com"])
def test_a_rule_domain_must_be_a_domain_name(bad: str) -> None:
    with pytest.raises(ValueError):
        rule_domain(bad)


RULES = Shaping(
    [
        ShapingRule("example.com", 10.0),
        ShapingRule("mail.example.com", 20.0),
        ShapingRule("xn--bcher-kva.de", 3.0),
        ShapingRule("*", 5.0),
    ]
)


@pytest.mark.parametrize(
    ("address", "key", "rate"),
    [
        ("ann@example.com", "example.com", 10.0),
        ("ann@EU.Example.com", "example.com", 10.0),
        ("ann@mail.example.com", "mail.example.com", 20.0),
        ("ann@eu.mail.example.com", "mail.example.com", 20.0),
        ("ann@bücher.de", "xn--bcher-kva.de", 3.0),
        ("ann@xn--bcher-kva.de", "xn--bcher-kva.de", 3.0),
        # a suffix counts only at a dot: notexample.com is not example.com
        ("ann@notexample.com", "notexample.com", 5.0),
        ("ann@other.org", "other.org", 5.0),
        ("ann@sub.other.org", "sub.other.org", 5.0),
    ],
)
def test_the_most_specific_rule_wins(address: str, key: str, rate: float) -> None:
    destination = RULES.destination(address)
    assert destination is not None
    assert (destination.key, destination.rule.rate) == (key, rate)


def test_without_a_default_rule_other_domains_are_not_limited() -> None:
    shaping = Shaping([ShapingRule("example.com", 10.0)])
    assert shaping.destination("ann@other.org") is None
    assert Shaping().destination("ann@example.com") is None
    assert not Shaping()


@pytest.mark.parametrize("domain", ["example.com", "*"])
def test_one_rule_per_domain(domain: str) -> None:
    with pytest.raises(ValueError, match="two shaping rules"):
        Shaping([ShapingRule(domain, 1.0), ShapingRule(domain, 2.0)])


_LABELS = st.sampled_from(["a", "b", "c"])
_DOMAINS = st.lists(_LABELS, min_size=1, max_size=4).map(".".join)


@given(
    st.lists(_DOMAINS, max_size=5, unique=True),
    st.booleans(),
    _DOMAINS,
)
def test_matching_agrees_with_its_definition(
    domains: list[str], with_default: bool, recipient: str
) -> None:
    """The rule for the longest of the rule domains that the recipient's domain equals or
    ends in after a dot; else the default rule, for the recipient's own domain."""
    rules = [ShapingRule(d, float(n + 1)) for n, d in enumerate(domains)]
    if with_default:
        rules.append(ShapingRule("*", 100.0))
    covering = [d for d in domains if recipient == d or recipient.endswith("." + d)]
    expected: tuple[str, float] | None = None
    if covering:
        best = max(covering, key=len)
        expected = (best, float(domains.index(best) + 1))
    elif with_default:
        expected = (recipient, 100.0)

    found = Shaping(rules).destination(f"x@{recipient}")
    assert (None if found is None else (found.key, found.rule.rate)) == expected


@given(
    st.lists(_DOMAINS, max_size=4, unique=True),
    st.lists(_DOMAINS, max_size=4, unique=True),
    st.lists(_DOMAINS, max_size=3),
    st.booleans(),
    _DOMAINS,
)
def test_mx_matching_agrees_with_its_definition(
    domains: list[str],
    suffixes: list[str],
    hosts: list[str],
    with_default: bool,
    recipient: str,
) -> None:
    """A domain rule covering the recipient wins; else the first mail host (by preference)
    that some MX suffix covers, by its longest such suffix; else `*`, for the recipient's
    domain. An MX rule is one destination, named after its suffix."""
    rules = [ShapingRule(d, 1.0) for d in domains]
    rules += [ShapingRule(rate=2.0, mx=m) for m in suffixes]
    if with_default:
        rules.append(ShapingRule("*", 100.0))

    def covering(names: list[str], name: str) -> list[str]:
        return [n for n in names if name == n or name.endswith("." + n)]

    expected: str | None = recipient if with_default else None
    by_host = [max(covering(suffixes, h), key=len) for h in hosts if covering(suffixes, h)]
    if covering(domains, recipient):
        expected = max(covering(domains, recipient), key=len)
    elif by_host:
        expected = "mx:" + by_host[0]

    found = Shaping(rules).destination(f"x@{recipient}", hosts)
    assert (None if found is None else found.key) == expected


@pytest.mark.parametrize(
    ("written", "suffix"),
    [("google.com", "google.com"), (".Google.COM.", "google.com"), ("mail.icloud.com", None)],
)
def test_mx_suffixes(written: str, suffix: str | None) -> None:
    assert mx_suffix(written) == (suffix or written)


@pytest.mark.parametrize("bad", ["*", "com", "", "goo gle.com"])
def test_an_mx_suffix_is_a_domain_name_of_two_labels(bad: str) -> None:
    with pytest.raises(ValueError):
        mx_suffix(bad)


def test_builtin_rules_cover_the_largest_providers() -> None:
    shaping = Shaping(builtin_rules())
    for address, hosts, provider in [
        ("ann@gmail.com", [], "google"),
        ("ann@acme.example", ["aspmx.l.google.com"], "google"),
        ("ann@yahoo.com", [], "yahoo"),
        ("ann@acme.example", ["mta5.am0.yahoodns.net"], "yahoo"),
        ("ann@hotmail.com", [], "microsoft"),
        ("ann@acme.example", ["acme-example.mail.protection.outlook.com"], "microsoft"),
        ("ann@me.com", [], "apple"),
        ("ann@acme.example", ["mx01.mail.icloud.com"], "apple"),
    ]:
        found = shaping.destination(address, hosts)
        assert found is not None and found.key == provider, address
        assert found.rule.connections and found.rule.messages_per_connection and found.rule.rate
    assert shaping.destination("ann@example.com", ["mx.example.com"]) is None


async def test_destinations_by_mail_host_from_dns(dns_server: DnsServer) -> None:
    dns_server.zone.update(
        {
            "acme.test": {"mx": [(1, "aspmx.l.google.com"), (5, "alt1.aspmx.l.google.com")]},
            "gmail.com": {"mx": [(5, "gmail-smtp-in.l.google.com")]},
            "other.test": {"mx": [(10, "mx.other.test")]},
        }
    )
    dns_server.failing.add("down.test")
    rules = [
        ShapingRule(mx="google.com", connections=5),
        ShapingRule("gmail.com", 10.0),
        ShapingRule("*", 50.0),
    ]
    destinations = Destinations(
        Shaping(rules), MxResolver([nameserver(dns_server.address)], timeout=1.0)
    )
    assert destinations.known("ann@acme.test") == (False, None)  # not looked up yet
    workspace = await destinations.of("ann@acme.test")
    assert workspace is not None and workspace.key == "mx:google.com"
    assert destinations.known("bob@ACME.test") == (True, workspace)
    # A domain rule decides without a look-up.
    assert destinations.known("ann@gmail.com")[1] == Destination("gmail.com", rules[1])
    other = await destinations.of("ann@other.test")
    assert other is not None and (other.key, other.rule) == ("other.test", rules[2])
    # A failed look-up leaves it to the domain rules and `*`.
    down = await destinations.of("ann@down.test")
    assert down is not None and (down.key, down.rule) == ("down.test", rules[2])
    assert dns_server.asked[("gmail.com", "mx")] == 0


async def test_domain_rules_alone_decide_without_a_resolver_and_mx_rules_need_one() -> None:
    rules = [ShapingRule("gmail.com", 10.0), ShapingRule("*", 50.0)]
    destinations = Destinations(Shaping(rules), None)
    assert destinations.known("ann@gmail.com") == (True, Destination("gmail.com", rules[0]))
    other = await destinations.of("ann@other.test")
    assert other is not None and (other.key, other.rule) == ("other.test", rules[1])
    with pytest.raises(ValueError, match="need a resolver"):
        Destinations(Shaping([ShapingRule(mx="google.com", connections=5)]), None)


async def test_connection_limits_hold_a_destination_to_its_connections() -> None:
    limits = ConnectionLimits()
    limited = Destination("mx:google.com", ShapingRule(mx="google.com", connections=2))
    free = Destination("other.test", ShapingRule("other.test", 5.0))
    most = 0

    async def send(destination: Destination) -> None:
        nonlocal most
        await limits.acquire(destination)
        most = max(most, limits.in_flight(limited.key))
        await asyncio.sleep(0.01)
        limits.release(destination)

    await asyncio.gather(*(send(limited) for _ in range(10)), *(send(free) for _ in range(5)))
    assert most == 2
    assert limits.in_flight(limited.key) == 0
    assert not limits._slots  # nobody sends there now: forgotten


# -- the limiter over an in-process timeline --------------------------------------------------


def destination(rate: float, key: str = "example.com") -> Destination:
    return Destination(key, ShapingRule(key, rate))


def measured_rate(times: list[float]) -> float:
    """Turns per second between the first and the last."""
    return (len(times) - 1) / (max(times) - min(times))


async def turn_times(limiter: RateLimiter, dest: Destination, count: int) -> list[float]:
    loop = asyncio.get_running_loop()

    async def one() -> float:
        await limiter.wait_turn(dest)
        return loop.time()

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def test_concurrent_sends_keep_the_rate() -> None:
    times = await turn_times(RateLimiter(LocalTimeline()), destination(100.0), 60)
    rate = measured_rate(times)
    print(f"\nin-process limiter, 60 concurrent sends at 100/s: {rate:.1f}/s")
    assert rate == pytest.approx(100.0, rel=0.25)


async def test_sends_one_after_another_keep_the_rate() -> None:
    limiter = RateLimiter(LocalTimeline())
    loop = asyncio.get_running_loop()
    times = []
    for _ in range(30):
        await limiter.wait_turn(destination(100.0))
        times.append(loop.time())
    assert measured_rate(times) == pytest.approx(100.0, rel=0.25)


async def test_an_idle_destination_sends_at_once_and_others_do_not_wait() -> None:
    limiter = RateLimiter(LocalTimeline())
    backlog = [asyncio.create_task(limiter.wait_turn(destination(10.0))) for _ in range(40)]
    try:
        # 40 sends at 10/s to example.com take 4 s; another destination is not behind them
        waited = await limiter.wait_turn(destination(10.0, "other.org"))
        assert waited < 1.0
    finally:
        for task in backlog:
            task.cancel()
        await asyncio.gather(*backlog, return_exceptions=True)


async def test_several_messages_take_several_turns() -> None:
    limiter = RateLimiter(LocalTimeline())
    dest = destination(100.0)
    # Ten at once go at the turn of the last of them, and the next one after that: both
    # reckoned from the start, as a busy machine may wake the first late (only ever late).
    loop = asyncio.get_running_loop()
    start = loop.time()
    await limiter.wait_turn(dest, count=10)
    assert loop.time() - start >= 0.08
    await limiter.wait_turn(dest)
    assert loop.time() - start >= 0.09


class CountingTimeline(LocalTimeline):
    """The in-process timeline, counting its reservations."""

    def __init__(self) -> None:
        super().__init__()
        self.reservations = 0

    async def reserve_turns(self, key: str, seconds: float) -> tuple[float, float]:
        self.reservations += 1
        return await super().reserve_turns(key, seconds)


async def test_sends_that_wait_together_share_a_reservation() -> None:
    timeline = CountingTimeline()
    await turn_times(RateLimiter(timeline), destination(1000.0), 100)
    assert timeline.reservations <= 2


async def test_a_backlog_reserves_only_a_little_ahead() -> None:
    """Turns reserved for sends that are then called off are lost to everyone; a process with
    a backlog holds at most about RESERVE_AHEAD of them."""
    limiter = RateLimiter(LocalTimeline())
    dest = destination(10.0)
    backlog = [asyncio.create_task(limiter.wait_turn(dest)) for _ in range(30)]
    await asyncio.sleep(0.05)
    for task in backlog:
        task.cancel()
    await asyncio.gather(*backlog, return_exceptions=True)
    # 30 sends at 10/s would hold the timeline for 3 s
    assert await limiter.wait_turn(dest) < RESERVE_AHEAD + 0.5


async def test_the_timeline_forgets_only_ends_that_have_passed() -> None:
    clock = itertools.count()
    timeline = LocalTimeline(clock=lambda: float(next(clock)))
    await timeline.reserve_turns("busy.example", 10_000.0)
    for n in range(5000):
        await timeline.reserve_turns(f"d{n}.example", 0.5)
    assert len(timeline._ends) <= 1024
    start, now = await timeline.reserve_turns("busy.example", 1.0)
    assert start == 10_000.0 > now


# -- backing off when a destination asks to slow down --------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("code", "enhanced", "slows"),
    [
        (421, "", True),
        (421, "4.7.0", True),
        (451, "4.7.1", True),  # a policy deferral: "try again later, slower"
        (450, "4.2.1", False),  # one mailbox busy, not the sender
        (452, "4.5.3", False),
        (550, "5.7.1", False),  # a refusal is not a deferral
        (250, "2.0.0", False),
    ],
)
def test_which_replies_ask_to_slow_down(code: int, enhanced: str, slows: bool) -> None:
    assert asks_to_slow_down(code, enhanced) is slows


def test_a_destination_that_asks_to_slow_down_is_halved_then_recovers() -> None:
    clock = Clock()
    backoff = Backoff(clock)
    assert backoff.factor("gmail.com") == 1.0
    assert backoff.slow_down("gmail.com") == 0.5
    clock.now += 0.5
    assert backoff.slow_down("gmail.com") == 0.5  # the same burst: one signal
    clock.now += 1.0
    assert backoff.slow_down("gmail.com") == 0.25
    assert backoff.factor("yahoo.com") == 1.0  # others are not touched
    for _ in range(10):
        clock.now += 1.0
        backoff.slow_down("gmail.com")
    assert backoff.factor("gmail.com") == Backoff.FLOOR
    clock.now += Backoff.RECOVER_EVERY
    assert backoff.factor("gmail.com") == Backoff.FLOOR + Backoff.RECOVER_BY
    clock.now += 4 * Backoff.RECOVER_EVERY
    assert backoff.factor("gmail.com") == 1.0


class RecordingTimeline(LocalTimeline):
    """The in-process timeline, keeping the seconds of each reservation."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    async def reserve_turns(self, key: str, seconds: float) -> tuple[float, float]:
        self.seconds.append(seconds)
        return await super().reserve_turns(key, seconds)


async def test_turns_are_spaced_by_the_rate_the_backoff_allows() -> None:
    timeline = RecordingTimeline()
    limiter = RateLimiter(timeline)
    dest = destination(1000.0)
    await limiter.wait_turn(dest, count=10)
    limiter.backoff.slow_down(dest.key)
    await limiter.wait_turn(dest, count=10)
    # Ten turns take 10 ms at the rule's rate, 20 ms at half of it.
    assert timeline.seconds == pytest.approx([0.01, 0.02])
