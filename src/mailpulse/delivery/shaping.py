"""Traffic shaping: each destination gets at most its configured rate, however many processes send.

A `ShapingRule` limits a recipient domain and its subdomains (`domain`), or every recipient
domain whose mail hosts lie under a suffix (`mx`, such as "google.com" for every Google
Workspace domain): to a rate, to a number of transactions at once, or both. The rule for `*`
limits every other recipient domain, each on its own. A domain rule wins over an MX rule, the
most specific wins, `*` comes last, and a domain no rule covers is never delayed.

An MX rule is one destination for all the domains it covers, as KumoMTA's mx_rollup: one
provider's domains share its rate and connections.

The rate is kept with GCRA (the generic cell rate algorithm) in its scheduling form: every
destination has a timeline whose end, the "theoretical arrival time" (TAT), is the earliest
moment the next message may go. Taking k turns moves the end to `max(end, now) + k / rate`,
and the turns are spaced `1 / rate` apart from where the reservation starts. A `Timeline`
keeps those ends: in memory when one process sends (`LocalTimeline`), in the shared store in
scale-out, so that N workers together keep one rate instead of N times it.

`RateLimiter` turns reservations into waits. Sends to one destination that wait together in
one process share one reservation, so a busy destination costs one round trip to a shared
timeline per batch, not per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import re
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import msgspec

from mailpulse.delivery.address import ascii_domain
from mailpulse.delivery.mail_hosts import LookupFailed
from mailpulse.units import parse_rate

if TYPE_CHECKING:
    from mailpulse.delivery.mx import MxResolver

ANY_DOMAIN = "*"
MX_KEY = "mx:"  # before an MX rule's suffix, in its name: a domain name has no colon

# How far ahead one process reserves a destination's turns. Turns reserved are spent even if
# their sends never happen (the process stops or dies), and other processes queue behind
# them, so a process with a backlog takes about this much of the timeline at a time.
RESERVE_AHEAD = 0.5  # seconds

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def rule_domain(text: str) -> str:
    """A rule's domain in the form recipient domains are compared in (lower case, IDNA);
    `*` stays `*`. Raises ValueError for anything that is not a domain name."""
    name = text.strip().lower().rstrip(".")
    if name == ANY_DOMAIN:
        return name
    if name.startswith("*."):
        raise ValueError(
            f"{text!r}: a rule for {name[2:]!r} covers its subdomains already; write that"
        )
    name = ascii_domain(name)
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"not a domain name: {text!r} (write e.g. 'gmail.com', or '*')")
    return name


def mx_suffix(text: str) -> str:
    """An MX rule's suffix of mail host names ("google.com", ".google.com" alike). Raises
    ValueError for anything that is not a domain name of two labels or more."""
    name = text.strip().lower().strip(".")
    if name == ANY_DOMAIN or "." not in name:
        raise ValueError(
            f"{text!r}: write the end of the mail hosts' names, e.g. 'google.com' for "
            "aspmx.l.google.com"
        )
    return rule_domain(name)


@dataclass(frozen=True)
class ShapingRule:
    """At most `rate` messages per second and `connections` transactions at once to `domain`
    and its subdomains (`*`: to each other domain), or to the domains whose mail hosts lie
    under `mx`; None: not limited. `messages_per_connection` applies to direct-MX delivery.
    Rules with one `provider` are one destination (the built-in rules of a mailbox provider)."""

    domain: str = ""
    rate: float | None = None
    mx: str = ""
    connections: int | None = None
    messages_per_connection: int | None = None
    provider: str = ""

    @property
    def name(self) -> str:
        """What the rule is called in metrics and status, and its destination's key unless it
        is the `*` rule (each domain its own)."""
        return self.provider or (MX_KEY + self.mx if self.mx else self.domain)


@dataclass(frozen=True)
class Destination:
    """Where one send goes, as shaping sees it: the timeline it takes turns on (`key`) and the
    rule that sets the pace."""

    key: str
    rule: ShapingRule


def recipient_domain(address: str) -> str:
    """The domain of a recipient address as rules see it (lower case, IDNA when it can be)."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    with contextlib.suppress(ValueError):  # undeliverable; the default rule still applies
        domain = ascii_domain(domain)
    return domain


def _most_specific(rules: dict[str, ShapingRule], name: str) -> ShapingRule | None:
    """The rule of the longest key that `name` equals or ends in after a dot."""
    suffix = name
    while True:
        rule = rules.get(suffix)
        if rule is not None:
            return rule
        _, dot, suffix = suffix.partition(".")
        if not dot:
            return None


class Shaping:
    """The rules of a project, looked up by recipient address (and its domain's mail hosts)."""

    def __init__(self, rules: Iterable[ShapingRule] = ()) -> None:
        self.rules = list(rules)
        self._by_domain: dict[str, ShapingRule] = {}
        self._by_mx: dict[str, ShapingRule] = {}
        self._default: ShapingRule | None = None
        for rule in self.rules:
            if rule.mx:
                if rule.mx in self._by_mx:
                    raise ValueError(f"two shaping rules for mail hosts under {rule.mx!r}")
                self._by_mx[rule.mx] = rule
            elif rule.domain in self._by_domain or (
                rule.domain == ANY_DOMAIN and self._default is not None
            ):
                raise ValueError(f"two shaping rules for {rule.domain!r}")
            elif rule.domain == ANY_DOMAIN:
                self._default = rule
            else:
                self._by_domain[rule.domain] = rule

    def __bool__(self) -> bool:
        return bool(self.rules)

    @property
    def has_mx_rules(self) -> bool:
        """Whether a destination may depend on mail hosts, which only MX rules look at."""
        return bool(self._by_mx)

    def needs_mail_hosts(self, address: str) -> bool:
        """Whether the destination of `address` depends on its domain's mail hosts: an MX rule
        may cover it and no domain rule does."""
        return self.has_mx_rules and self._domain_rule(recipient_domain(address)) is None

    def _domain_rule(self, domain: str) -> ShapingRule | None:
        return _most_specific(self._by_domain, domain)

    def destination(self, address: str, mail_hosts: Sequence[str] = ()) -> Destination | None:
        """The destination of a recipient address, or None when no rule limits it.
        `mail_hosts`: its domain's, by preference; the first that an MX rule covers decides,
        by that host's most specific rule. Without them, only domain rules and `*` apply."""
        if not self:
            return None
        domain = recipient_domain(address)
        rule = self._domain_rule(domain)
        if rule is None and self._by_mx:
            rule = next(
                (
                    found
                    for host in mail_hosts
                    if (found := _most_specific(self._by_mx, host.lower().rstrip("."))) is not None
                ),
                None,
            )
        if rule is not None:
            return Destination(rule.name, rule)
        return None if self._default is None else Destination(domain, self._default)


class Destinations:
    """The destination of each send: by its domain's rules, and by its mail hosts where an MX
    rule may decide. A lookup that fails leaves the domain rules and `*` to decide: a send is
    never held up by DNS beyond the resolver's timeout, nor lost to it."""

    def __init__(self, shaping: Shaping, resolver: MxResolver | None) -> None:
        """`resolver`: needed only by a shaping with MX rules."""
        if resolver is None and shaping.has_mx_rules:
            raise ValueError("MX rules need a resolver of mail hosts")
        self.shaping = shaping
        self._resolver = resolver

    def known(self, address: str) -> tuple[bool, Destination | None]:
        """`(True, destination)` when it is known without a lookup, else `(False, None)`."""
        if not self.shaping.needs_mail_hosts(address):
            return True, self.shaping.destination(address)
        assert self._resolver is not None  # there are MX rules
        hosts = self._resolver.cached(recipient_domain(address))
        if hosts is None:
            return False, None
        return True, self.shaping.destination(address, hosts.hosts)

    async def of(self, address: str) -> Destination | None:
        hosts: tuple[str, ...] = ()
        if self.shaping.needs_mail_hosts(address):
            assert self._resolver is not None  # there are MX rules
            with contextlib.suppress(LookupFailed):
                hosts = (await self._resolver.mail_hosts(recipient_domain(address))).hosts
        return self.shaping.destination(address, hosts)


class ConnectionLimits:
    """SMTP transactions under way per destination, at most its rule's `connections` at once.

    Kept by the one process that sends (its sender sees every send of every courier process):
    in scale-out each worker keeps its own, as KumoMTA's limits hold per node."""

    def __init__(self) -> None:
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._users: Counter[str] = Counter()  # holding or waiting for a slot
        self._holding: Counter[str] = Counter()

    def in_flight(self, key: str) -> int:
        return self._holding[key]

    async def acquire(self, destination: Destination) -> None:
        limit = destination.rule.connections
        if limit is None:
            return
        key = destination.key
        slots = self._slots.setdefault(key, asyncio.Semaphore(limit))
        self._users[key] += 1
        try:
            await slots.acquire()
        except BaseException:
            self._leave(key)
            raise
        self._holding[key] += 1

    def release(self, destination: Destination) -> None:
        if destination.rule.connections is None:
            return
        key = destination.key
        self._holding[key] -= 1
        if not self._holding[key]:
            del self._holding[key]
        self._slots[key].release()
        self._leave(key)

    def _leave(self, key: str) -> None:
        # A destination nobody sends to is forgotten: the `*` rule makes one per domain.
        self._users[key] -= 1
        if not self._users[key]:
            del self._users[key], self._slots[key]


class _Provider(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    mx: list[str]
    domains: list[str]
    rate: str
    connections: int
    messages_per_connection: int


class _Providers(msgspec.Struct, forbid_unknown_fields=True):
    provider: list[_Provider]


@functools.cache
def builtin_rules() -> tuple[ShapingRule, ...]:
    """The rules of `builtin_shaping.toml`: one provider's rules share its name and limits."""
    text = files("mailpulse.delivery").joinpath("builtin_shaping.toml").read_text("utf-8")
    rules: list[ShapingRule] = []
    for provider in msgspec.convert(tomllib.loads(text), _Providers).provider:
        limits = {
            "rate": parse_rate(provider.rate),
            "connections": provider.connections,
            "messages_per_connection": provider.messages_per_connection,
            "provider": provider.name,
        }
        rules += [ShapingRule(mx=mx_suffix(suffix), **limits) for suffix in provider.mx]
        rules += [ShapingRule(rule_domain(domain), **limits) for domain in provider.domains]
    return tuple(rules)


def with_builtin_rules(rules: Sequence[ShapingRule]) -> list[ShapingRule]:
    """`rules`, and the built-in rules for domains and mail hosts that none of them names."""
    named = {(rule.domain, rule.mx) for rule in rules}
    return [r for r in builtin_rules() if (r.domain, r.mx) not in named] + list(rules)


@runtime_checkable
class Timeline(Protocol):
    async def reserve_turns(self, key: str, seconds: float) -> tuple[float, float]:
        """Take `seconds` of destination `key`'s timeline, from its end or from now when the
        end lies in the past. Returns `(start, now)` on the timeline's own clock: the turns
        taken run from `start` to `start + seconds`."""
        ...


class LocalTimeline:
    """Timeline ends in this process's memory, on its monotonic clock: one process sends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ends: dict[str, float] = {}
        self._forget_at = 1024

    async def reserve_turns(self, key: str, seconds: float) -> tuple[float, float]:
        now = self._clock()
        start = max(self._ends.get(key, now), now)
        self._ends[key] = start + seconds
        if len(self._ends) > self._forget_at:
            # An end in the past means the same as no end: forget those, so that a default
            # rule over many domains does not keep every domain ever sent to.
            self._ends = {k: end for k, end in self._ends.items() if end > now}
            self._forget_at = max(1024, 2 * len(self._ends))
        return start, now


def asks_to_slow_down(code: int, enhanced: str) -> bool:
    """A reply that says the receiver takes less from us now: 421 (service not available,
    closing) or an enhanced status 4.7.x (RFC 3463: security or policy, such as a rate limit),
    unlike a 4xx about one mailbox."""
    return code == 421 or enhanced.startswith("4.7.")


class Backoff:
    """How much of its rule's rate each destination gets now (a factor up to 1).

    A destination that asks to slow down has its rate halved, at most once per `CUT_EVERY`
    (a burst of such replies is one signal) and down to `FLOOR`; it then recovers by
    `RECOVER_BY` for every `RECOVER_EVERY` seconds without another such reply, as an
    additive-increase, multiplicative-decrease sender does. Kept per process: each process
    backs off from what it is told.
    """

    FLOOR = 1 / 16
    CUT_EVERY = 1.0
    RECOVER_EVERY = 10.0
    RECOVER_BY = 0.25

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cuts: dict[str, tuple[float, float]] = {}  # key → (factor when cut, when)

    def factor(self, key: str) -> float:
        cut = self._cuts.get(key)
        if cut is None:
            return 1.0
        factor, at = cut
        recovered = factor + self.RECOVER_BY * ((self._clock() - at) // self.RECOVER_EVERY)
        if recovered >= 1.0:
            del self._cuts[key]
            return 1.0
        return recovered

    def slowed(self) -> dict[str, float]:
        """Every destination held below its rule's rate now, and its factor."""
        factors = {key: self.factor(key) for key in list(self._cuts)}
        return {key: factor for key, factor in factors.items() if factor < 1.0}

    def slow_down(self, key: str) -> float:
        """A destination asked us to slow down; its factor from now on."""
        now = self._clock()
        cut = self._cuts.get(key)
        if cut is not None and now - cut[1] < self.CUT_EVERY:
            return cut[0]
        factor = max(self.FLOOR, self.factor(key) / 2)
        self._cuts[key] = (factor, now)
        return factor


class RateLimiter:
    """Waits sends out until their destination's turn, reserving turns on a `Timeline`, at
    the rate of the destination's rule times what its `backoff` allows now."""

    def __init__(self, timeline: Timeline, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self._timeline = timeline
        self._waiting: dict[str, list[tuple[int, asyncio.Future[float]]]] = {}
        self._reserving: dict[str, asyncio.Task[None]] = {}

    async def wait_turn(self, destination: Destination, count: int = 1) -> float:
        """Return once `count` messages may go to `destination`; answers the seconds waited.
        A failure of the timeline (a shared store out of reach) raises here."""
        loop = asyncio.get_running_loop()
        asked = loop.time()
        turn: asyncio.Future[float] = loop.create_future()
        self._waiting.setdefault(destination.key, []).append((count, turn))
        if destination.key not in self._reserving:
            self._reserving[destination.key] = asyncio.create_task(
                self._reserve(destination), name=f"mailpulse-shaping-{destination.key}"
            )
        at = await turn
        if at > loop.time():
            await asyncio.sleep(at - loop.time())
        return loop.time() - asked

    def _take(self, key: str, up_to: int) -> list[tuple[int, asyncio.Future[float]]]:
        """The next waiters of `key`, in arrival order, `up_to` messages (at least one waiter)."""
        waiting = [w for w in self._waiting.pop(key, []) if not w[1].done()]
        taken, total = 0, 0
        while taken < len(waiting) and (taken == 0 or total + waiting[taken][0] <= up_to):
            total += waiting[taken][0]
            taken += 1
        if taken < len(waiting):
            self._waiting[key] = waiting[taken:]
        return waiting[:taken]

    async def _reserve(self, destination: Destination) -> None:
        """Reserves turns for whoever waits on `destination`, batch after batch, until nobody
        does; it never runs more than about RESERVE_AHEAD ahead of the clock."""
        loop = asyncio.get_running_loop()
        key = destination.key
        batch: list[tuple[int, asyncio.Future[float]]] = []
        try:
            while True:
                assert destination.rule.rate is not None, "a rule without a rate has no turns"
                rate = destination.rule.rate * self.backoff.factor(key)
                batch = self._take(key, max(1, math.ceil(rate * RESERVE_AHEAD)))
                if not batch:
                    break
                messages = sum(count for count, _ in batch)
                start, now = await self._timeline.reserve_turns(key, messages / rate)
                # The timeline's clock may be another machine's: only differences from its
                # `now` mean something here.
                offset = loop.time() - now
                sent = 0
                for count, turn in batch:
                    sent += count
                    if not turn.done():
                        # a waiter with several messages goes at the turn of its last one
                        turn.set_result(offset + start + (sent - 1) / rate)
                end = offset + start + messages / rate
                if key in self._waiting and end - RESERVE_AHEAD > loop.time():
                    await asyncio.sleep(end - RESERVE_AHEAD - loop.time())
        except Exception as exc:
            self._fail(key, batch, exc)
        except asyncio.CancelledError:
            self._fail(key, batch, None)
            raise
        finally:
            del self._reserving[key]

    def _fail(
        self, key: str, batch: list[tuple[int, asyncio.Future[float]]], exc: Exception | None
    ) -> None:
        """Nobody gets a turn that was not reserved: every waiter of `key` raises `exc` (or is
        cancelled with the reservation) instead of sending."""
        for _, turn in batch + self._waiting.pop(key, []):
            if turn.done():
                continue
            if exc is None:
                turn.cancel()
            else:
                turn.set_exception(exc)
