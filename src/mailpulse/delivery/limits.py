"""Limits on all of a project's sends, as relays and ESPs set them: a rate (kept by the shaping
`RateLimiter` under GLOBAL_RATE, on top of each send's destination rule), and quotas, at most so
many sends per UTC hour and per UTC day.

Each quota is counted per fixed window (the hour or day a send falls in), in the state store:
durable, so a restart does not give a used-up quota back, and shared, so the workers of a
scale-out deployment count together. A send is counted when it is about to be attempted; when a
quota is used up it is not attempted, and waits for the window to turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

HOUR = 3600.0
DAY = 86400.0
GLOBAL_RATE = "[delivery.limits]"  # the rate's timeline and name: no domain is written so


class QuotaStore(Protocol):
    async def take_quota(self, window: str, limit: int, ends_at: float) -> int | None: ...
    async def return_quota(self, window: str) -> None: ...
    async def quota_used(self, windows: Sequence[str]) -> dict[str, int]: ...


@dataclass(frozen=True)
class Quota:
    """`limit` sends per window of `period` seconds (UTC-aligned: epoch time is)."""

    name: str  # "hourly", "daily"
    limit: int
    period: float

    def window(self, now: float) -> tuple[str, float]:
        """The window `now` falls in: its name in the store, and when it ends."""
        start = now // self.period * self.period
        return f"{self.name}:{int(start)}", start + self.period


@dataclass(frozen=True)
class SendLimits:
    rate: float | None = None
    quotas: tuple[Quota, ...] = ()  # the longest window first: a send it holds waits longest

    def __bool__(self) -> bool:
        return self.rate is not None or bool(self.quotas)


@dataclass(frozen=True)
class QuotaStatus:
    name: str
    limit: int
    used: int
    window_ends_at: float


class Quotas:
    def __init__(
        self, store: QuotaStore, quotas: Sequence[Quota], clock: Callable[[], float] = time.time
    ) -> None:
        self.quotas = tuple(quotas)
        self._store = store
        self._clock = clock
        self._full: dict[str, float] = {}  # windows known used up → when they end
        self._counted: dict[str, tuple[str, int]] = {}  # quota → (window, count) last seen

    async def take(self) -> float | None:
        """Counts one send in every quota's window; None when it may go. Otherwise nothing
        is counted, and the answer is when the window that is used up ends."""
        now = self._clock()
        self._full = {window: ends for window, ends in self._full.items() if ends > now}
        taken: list[str] = []
        for quota in self.quotas:
            window, ends = quota.window(now)
            # A window seen used up stays so: no store round trip per send until it turns.
            count = None
            if window not in self._full:
                count = await self._store.take_quota(window, quota.limit, ends)
            if count is None:
                self._full[window] = ends
                self._counted[quota.name] = (window, quota.limit)
                for earlier in taken:
                    await self._store.return_quota(earlier)
                return ends
            self._counted[quota.name] = (window, count)
            taken.append(window)
        return None

    def counted(self) -> dict[str, int]:
        """Each quota's count in its current window, as this process last saw it."""
        now = self._clock()
        seen = {q.name: self._counted.get(q.name, ("", 0)) for q in self.quotas}
        return {
            q.name: seen[q.name][1] if seen[q.name][0] == q.window(now)[0] else 0
            for q in self.quotas
        }

    async def status(self) -> list[QuotaStatus]:
        now = self._clock()
        windows = [(quota, *quota.window(now)) for quota in self.quotas]
        used = await self._store.quota_used([window for _, window, _ in windows])
        return [
            QuotaStatus(quota.name, quota.limit, used.get(window, 0), ends)
            for quota, window, ends in windows
        ]
