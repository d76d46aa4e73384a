"""The lifecycle rollup: what became of messages, counted by the fold per hour and per (campaign,
journey, template), so that `GET /admin/stats` (mailpulse.observe.kpis) sums a few rows instead
of reading the log.

Each of mailpulse's own lifecycle events is counted once, in the commit that moves the fold's
checkpoint past it (so replays count nothing twice), in the hour it was received (UTC): one per
event of its kind (`FIGURES`), except opens and clicks, which count messages as the engagement
figures do (mailpulse.runtime.engagement: each message once, people apart from machines, a
scanner's first click taken back in the hour of the burst that gave it away). A bounce reported
after the message was sent (a DSN, an ESP's webhook: it names its `source`) is also counted as
`bounced_late`, which the KPIs take off the messages delivered.

An `Unsubscribed` names only its message's key: the fold reads the message's outbox row for its
journey and template (`about_unsubscribes`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from mailpulse.campaigns import campaign_of_key
from mailpulse.runtime.lifecycle import Lifecycle
from mailpulse.store import StateStore
from mailpulse.types import Event, EventType, SendIntent

HOUR = 3600
BOUNCED_LATE = "bounced_late"
# Lifecycle event → the figure it counts as (opens and clicks come through the engagement).
FIGURES: dict[str, str] = {
    Lifecycle.QUEUED.value: "queued",
    Lifecycle.HELD.value: "held",
    Lifecycle.SENT.value: "sent",
    Lifecycle.DEFERRED.value: "deferred",
    Lifecycle.BOUNCED.value: "bounced",
    Lifecycle.COMPLAINED.value: "complained",
    Lifecycle.SUPPRESSED.value: "suppressed",
    Lifecycle.EXPIRED.value: "expired",
    Lifecycle.FAILED.value: "failed",
    Lifecycle.CONVERTED.value: "converted",
    Lifecycle.UNSUBSCRIBED.value: "unsubscribed",
}
# (hour start, campaign, journey, template, figure); '' where the message has none.
RollupKey = tuple[int, str, str, str, str]


def hour_of(at: float) -> int:
    return int(at // HOUR) * HOUR


def is_ours(event: Event) -> bool:
    """One of mailpulse's own lifecycle events (a customer's events name a user)."""
    return event.type == EventType.TRACK and event.user_id is None and event.anonymous_id is None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def dimensions(properties: Mapping[str, Any], send: SendIntent | None = None) -> tuple[str, ...]:
    """(campaign, journey, template) of the message a lifecycle event is about: as `send`
    has them when given, else as the event names them."""
    if send is not None:
        return (send.campaign or "", send.journey or "", send.template)
    key = _text(properties.get("key"))
    campaign = campaign_of_key(key) if key else None
    return (
        campaign or _text(properties.get("campaign")),
        _text(properties.get("journey")),
        _text(properties.get("template")),
    )


class Rollup:
    """What one fold batch adds to the rollup."""

    def __init__(self) -> None:
        self.counts: Counter[RollupKey] = Counter()
        self.amounts: Counter[RollupKey] = Counter()

    def count(self, event: Event, sends: Mapping[str, SendIntent]) -> None:
        """A lifecycle event of the kinds counted one per event (`FIGURES`)."""
        figure = FIGURES.get(event.event or "")
        if figure is None or not is_ours(event):
            return
        props = event.properties
        where = dimensions(props, sends.get(_text(props.get("key"))))
        hour = hour_of(event.received_at)
        self.counts[(hour, *where, figure)] += 1
        if figure == "converted":
            revenue = props.get("revenue")
            if isinstance(revenue, int | float) and not isinstance(revenue, bool):
                self.amounts[(hour, *where, figure)] += float(revenue)
        elif figure == "bounced" and props.get("source"):
            self.counts[(hour, *where, BOUNCED_LATE)] += 1

    def engaged(self, event: Event, figures: Mapping[str, int]) -> None:
        """What an open or click changed of its message's figures (runtime.engagement)."""
        if not any(figures.values()) or not is_ours(event):
            return
        where = dimensions(event.properties)
        hour = hour_of(event.received_at)
        for figure, n in figures.items():
            if n:
                self.counts[(hour, *where, figure)] += n

    def rows(self) -> list[tuple[int, str, str, str, str, int, float]]:
        """As FoldCommit.rollup has them, in key order (writers lock rows in one order)."""
        keys = sorted(k for k in self.counts.keys() | self.amounts.keys() if self._changed(k))
        return [(*k, self.counts[k], self.amounts[k]) for k in keys]

    def _changed(self, key: RollupKey) -> bool:
        return bool(self.counts[key] or self.amounts[key])


async def about_unsubscribes(state: StateStore, events: Iterable[Event]) -> dict[str, SendIntent]:
    """Key → the message of each of our `Unsubscribed` events that names one (its row's intent):
    the event names nothing else of it."""
    found: dict[str, SendIntent] = {}
    for ev in events:
        key = _text(ev.properties.get("key"))
        if ev.event == Lifecycle.UNSUBSCRIBED and key and is_ours(ev) and key not in found:
            row = await state.outbox_get(key)
            if row is not None:
                found[key] = row.intent
    return found
