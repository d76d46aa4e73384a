"""The protective breaker: it watches the complaint rate of marketing and pauses marketing before
the mailbox providers stop it (the rule and its thresholds: mailpulse.policy.breaker).

Every process that sends or serves the admin API (the embedded server, each scale-out worker
and API node) runs one `Breaker` stage: every EVALUATE_EVERY seconds it reads the counts the
folds keep and judges them. Reaching `alert` raises the alert, falling below it resolves the
alert; reaching `pause` trips the breaker. Each move is one conditional update of the one
stored breaker, so of several evaluators exactly one makes it, and only that one logs and
counts it: an alert fires once and resolves once, a breaker trips once. Below `min_sends` the
rate is not judged and nothing moves.

While tripped (durably: a restart finds it so), the senders hold marketing (see
mailpulse.runtime.sender; they read the breaker afresh for each batch that holds marketing, so
a trip by any process holds the next one), campaigns read no further (see
mailpulse.campaigns.runner; within EVALUATE_EVERY), and transactional mail goes on. Only an
operator resumes it (POST /admin/breaker/resume, `mailpulse breaker resume`): every held
message is then due at once, and from then on only what follows the resume is judged; else
the complaints it tripped on would trip it again within seconds.
While the rate over the window is still at the pause threshold, a resume must be forced: the
providers still see that rate, and the operator says they dealt with its cause.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

from mailpulse.observe import Metrics
from mailpulse.policy.breaker import (
    BreakerSettings,
    Figures,
    Level,
    bucket_of,
    format_percent,
    judge,
)
from mailpulse.policy.suppression import iso
from mailpulse.store import StateStore
from mailpulse.store.interface import BreakerRecord

log = logging.getLogger("mailpulse.breaker")

EVALUATE_EVERY = 2.0  # seconds between judgements: how soon a trip reaches this process
FORGET_EVERY = 3600.0  # seconds between sweeps of counts no window reaches any more
NOT_TRIPPED = "the breaker is not tripped: marketing is going out"


class ResumeRefused(Exception):
    """Why a resume was not made: the breaker is not tripped (`forcible` False), or the rate is
    still at the pause threshold (`forcible` True: `force` makes it)."""

    def __init__(self, reason: str, *, forcible: bool) -> None:
        super().__init__(reason)
        self.reason, self.forcible = reason, forcible


def holding(record: BreakerRecord) -> str | None:
    """Why marketing is held, or None when it goes out."""
    if record.tripped_at is None:
        return None
    return f"the protective breaker tripped at {iso(record.tripped_at)}: {record.reason}"


class Breaker:
    def __init__(
        self,
        state: StateStore,
        settings: BreakerSettings,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        every: float = EVALUATE_EVERY,
    ) -> None:
        self._state, self.settings, self._metrics = state, settings, metrics
        self._clock, self._every = clock, every
        self._forgot_at = -math.inf
        # As last read: what this process's campaign runner goes by between reads.
        self.record = BreakerRecord()

    @property
    def tripped(self) -> bool:
        return self.record.tripped_at is not None

    def holding(self) -> str | None:
        """Why marketing is held, or None when it goes out (as last read)."""
        return holding(self.record)

    async def run(self) -> None:
        while True:
            await self.evaluate()
            await asyncio.sleep(self._every)

    async def figures(self, record: BreakerRecord, now: float) -> Figures:
        """What is judged now: the window's counts, from the last resume on if that is later
        (less what the resume's bucket held by then)."""
        since = max(now - self.settings.window, record.judged_from)
        sends, complaints = await self._state.complaint_counts(bucket_of(since))
        if since == record.judged_from:
            sends = max(0, sends - record.baseline_sends)
            complaints = max(0, complaints - record.baseline_complaints)
        return Figures(sends=sends, complaints=complaints, since=since, at=now)

    async def read(self) -> BreakerRecord:
        """The breaker as stored now (and as this process goes by until the next read)."""
        self.record = await self._state.breaker()
        return self.record

    async def standing(self) -> tuple[BreakerRecord, Figures]:
        """The breaker as stored, and the figures it judges now."""
        record = await self._state.breaker()
        return record, await self.figures(record, self._clock())

    async def evaluate(self) -> Figures:
        """Judge the rate once, and make the moves it calls for."""
        now = self._clock()
        record = await self._state.breaker()
        figures = await self.figures(record, now)
        level = judge(figures, self.settings)
        self._show(figures)
        moved = False
        if level in (Level.ALERT, Level.PAUSE) and record.alert_at is None:
            moved = await self._raise_alert(figures, now)
        elif level == Level.CLEAR and record.alert_at is not None:
            moved = await self._resolve_alert(figures, now)
        if level == Level.PAUSE and record.tripped_at is None:
            moved = await self._trip(figures, now, record.judged_from) or moved
        self.record = await self._state.breaker() if moved else record
        self._metrics.complaint_alert.set(self.record.alert_at is not None)
        self._metrics.breaker_tripped.set(self.tripped)
        if now - self._forgot_at >= FORGET_EVERY:
            # Kept twice the window: a window made longer still finds some of its past.
            await self._state.forget_complaint_counts(bucket_of(now - 2 * self.settings.window))
            self._forgot_at = now
        return figures

    def _show(self, figures: Figures) -> None:
        self._metrics.complaint_window.labels("sends").set(figures.sends)
        self._metrics.complaint_window.labels("complaints").set(figures.complaints)
        rate = figures.rate
        self._metrics.complaint_rate.set(math.nan if rate is None else float(rate))

    async def _raise_alert(self, figures: Figures, now: float) -> bool:
        if not await self._state.set_complaint_alert(True, now):
            return False  # another evaluator raised it
        self._metrics.breaker_moves.labels("alert_raised").inc()
        log.warning(
            "complaint rate alert: %s (alert at %s, marketing pauses at %s)",
            figures.describe(),
            format_percent(self.settings.alert),
            format_percent(self.settings.pause),
        )
        return True

    async def _resolve_alert(self, figures: Figures, now: float) -> bool:
        if not await self._state.set_complaint_alert(False, now):
            return False
        self._metrics.breaker_moves.labels("alert_resolved").inc()
        log.warning(
            "complaint rate alert resolved: %s (below %s)",
            figures.describe(),
            format_percent(self.settings.alert),
        )
        return True

    async def _trip(self, figures: Figures, now: float, judged_from: float) -> bool:
        """`judged_from`: of the record `figures` were judged on; a resume made since (which
        judges afresh) leaves the breaker as the operator left it."""
        reason = (
            f"the complaint rate reached {format_percent(self.settings.pause)}: "
            f"{figures.describe()}"
        )
        tripped = await self._state.trip_breaker(
            now,
            reason,
            sends=figures.sends,
            complaints=figures.complaints,
            since=figures.since,
            judged_from=judged_from,
        )
        if not tripped:
            return False
        self._metrics.breaker_moves.labels("tripped").inc()
        log.error(
            "protective breaker tripped: %s. Marketing is held until an operator resumes it "
            "(mailpulse breaker resume); transactional mail goes on",
            reason,
        )
        return True

    async def resume(self, by: str, *, force: bool = False) -> int:
        """Let marketing go again (see the module's doc): how many held messages are let go.
        ResumeRefused when it is not tripped, or, without `force`, while the rate judged is
        still at the pause threshold."""
        now = self._clock()
        record = await self._state.breaker()
        if record.tripped_at is None:
            raise ResumeRefused(NOT_TRIPPED, forcible=False)
        figures = await self.figures(record, now)
        if not force and judge(figures, self.settings) == Level.PAUSE:
            raise ResumeRefused(
                f"the complaint rate is still at the pause threshold "
                f"({format_percent(self.settings.pause)}): {figures.describe()}. The providers "
                "see it too: deal with its cause (the list, the content), then resume with "
                "force; only what is sent after the resume is judged then",
                forcible=True,
            )
        released = await self._state.resume_breaker(now, by, bucket_of(now))
        if released is None:
            raise ResumeRefused(NOT_TRIPPED, forcible=False)
        self._metrics.breaker_moves.labels("resumed").inc()
        log.warning(
            "protective breaker resumed by %s%s: %d held messages go out; judged from now on",
            by,
            " (forced)" if force else "",
            released,
        )
        self.record = await self._state.breaker()
        self._metrics.breaker_tripped.set(self.tripped)
        return released
