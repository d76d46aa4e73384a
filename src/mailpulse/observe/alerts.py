"""The alert engine: judges every rule against the metric sampler's history, and tells the
rule's notifiers when one fires and when it resolves, each once.

A rule is inactive, pending (it holds, but not yet for `for`) or firing. An unjudged rule
(too few snapshots yet, fewer than `min_count` in the window, no value) moves nowhere, as the
protective breaker does below `min_sends`: silence is not evidence that a problem went away,
nor that one came.

State lives in this process: a restart forgets what fired, so an alert still holding fires
again after it; each API node of a scale-out deployment judges its own metrics.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from mailpulse.observe.alerts_expr import Selector
from mailpulse.observe.alerts_rules import AlertRule, AlertRules
from mailpulse.observe.metrics import Metrics
from mailpulse.observe.notify import Notice
from mailpulse.observe.sampler import MetricSampler

EVALUATE_EVERY = 1.0  # seconds: the sampler's interval
_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}

Notify = Callable[[Notice, Sequence[str]], None]


@dataclass
class AlertState:
    rule: AlertRule
    state: Literal["inactive", "pending", "firing"] = "inactive"
    value: float | None = None  # the figure as last judged; None: unjudged
    judged_at: float | None = None
    since: float | None = None  # pending or firing since (when the rule began to hold)
    fired_at: float | None = None
    fired_value: float | None = None
    resolved_at: float | None = None
    resolved_value: float | None = None


class AlertEngine:
    def __init__(
        self,
        rules: AlertRules,
        sampler: MetricSampler,
        notify: Notify,
        metrics: Metrics,
        project: str,
        clock: Callable[[], float] = time.time,
        every: float = EVALUATE_EVERY,
    ) -> None:
        self._sampler, self._notify, self._metrics = sampler, notify, metrics
        self._project, self._clock, self._every = project, clock, every
        self.states = {rule.name: AlertState(rule) for rule in rules.rules}
        for name in self.states:
            metrics.alert_firing.labels(name).set(0)

    async def run(self) -> None:
        while True:
            self.evaluate()
            await asyncio.sleep(self._every)

    def evaluate(self, now: float | None = None) -> None:
        """Judge every rule once and make the moves that calls for."""
        now = self._clock() if now is None else now
        for state in self.states.values():
            value = figure(state.rule, self._sampler)
            state.value, state.judged_at = value, now
            if value is None:
                continue
            holds = _COMPARE[state.rule.op](value, state.rule.threshold)
            if holds and state.state == "inactive":
                state.state, state.since = "pending", now
            if holds and state.state == "pending" and now - (state.since or now) >= state.rule.for_:
                self._fire(state, value, now)
            elif not holds and state.state == "pending":
                state.state, state.since = "inactive", None
            elif not holds and state.state == "firing":
                self._resolve(state, value, now)

    def _fire(self, state: AlertState, value: float, now: float) -> None:
        state.state, state.fired_at, state.fired_value = "firing", now, value
        state.resolved_at = state.resolved_value = None
        self._metrics.alert_firing.labels(state.rule.name).set(1)
        notice = self._notice(state, "firing", value, now, state.since or now)
        self._notify(notice, state.rule.notify)

    def _resolve(self, state: AlertState, value: float, now: float) -> None:
        fired_at = state.fired_at or now
        state.state, state.since = "inactive", None
        state.resolved_at, state.resolved_value = now, value
        self._metrics.alert_firing.labels(state.rule.name).set(0)
        self._notify(self._notice(state, "resolved", value, now, fired_at), state.rule.notify)

    def _notice(
        self,
        state: AlertState,
        status: Literal["firing", "resolved"],
        value: float,
        now: float,
        since: float,
    ) -> Notice:
        rule = state.rule
        return Notice(
            alert=rule.name,
            status=status,
            severity=rule.severity,
            summary=rule.summary,
            expr=str(rule.expr),
            op=rule.op,
            value=value,
            threshold=rule.threshold,
            window=rule.window,
            for_=rule.for_,
            at=now,
            since=since,
            shown_as=rule.shown_as,
            project=self._project,
        )


def figure(rule: AlertRule, sampler: MetricSampler) -> float | None:
    """What a rule's expression comes to now, over its window; None when it cannot be judged."""
    expr, window = rule.expr, rule.window
    if expr.function == "breaker":
        # The protective breaker's own figures (mailpulse.runtime.breaker), judged from as
        # many sends as it judges from.
        sends = _latest(sampler, Selector("mailpulse_breaker_window", (("figure", ("sends",)),)))
        if sends is None or sends < max(rule.min_count, 1):
            return None
        return _latest(sampler, Selector("mailpulse_complaint_rate_ratio"))
    if expr.function == "value":
        return _latest(sampler, expr.selectors[0])
    if expr.function == "quantile":
        (histogram,) = expr.selectors
        labels = next(histogram.matches())
        seen = sampler.increase(histogram.name + "_count", labels, window)
        if seen is None or seen < max(rule.min_count, 1):
            return None
        assert expr.q is not None
        return sampler.quantile(histogram.name, expr.q, window, labels)
    if expr.function == "rate":
        (counter,) = expr.selectors
        rates = [sampler.rate(counter.name, labels, window) for labels in counter.matches()]
        return None if any(r is None for r in rates) else sum(r or 0.0 for r in rates)
    grown = [_increase(sampler, selector, window) for selector in expr.selectors]
    if any(g is None for g in grown):
        return None
    if expr.function == "increase":
        return grown[0]
    part, whole = grown
    assert part is not None and whole is not None
    if whole <= 0 or whole < rule.min_count:
        return None
    return part / whole


def _increase(sampler: MetricSampler, selector: Selector, window: float) -> float | None:
    total = 0.0
    for labels in selector.matches():
        grown = sampler.increase(selector.name, labels, window)
        if grown is None:
            return None
        total += grown
    return total


def _latest(sampler: MetricSampler, selector: Selector) -> float | None:
    """The value in the newest snapshot, summed over the matching series; None when none
    has one there."""
    total, seen = 0.0, False
    for labels in selector.matches():
        points = sampler.series(selector.name, labels, seconds=0.0)
        if points:
            total, seen = total + points[-1][1], True
    return total if seen else None
