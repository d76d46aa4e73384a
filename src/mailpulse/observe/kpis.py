"""KPIs: what became of the messages of a time range, all together or per campaign, journey or
template, summed from the lifecycle rollup the fold keeps (mailpulse.runtime.rollup) rather than
read from the log, so that a year costs a few thousand rows, not every event.

The rollup counts whole hours (UTC): a range is widened to the hours it touches (`hours_of`).

What the figures are:

- `sent`: messages the receiving server accepted (its 250); `delivered`: those less the ones a
  bounce was reported about after (a DSN, an ESP's webhook), counted in the hour of the report
  (a bucket of a series with more late bounces than sends delivered none);
- `bounced`: bounces, at the SMTP reply or reported after; `deferred`: deferrals (each attempt);
  `expired`: messages given up on after retrying; `failed`: messages we failed to make;
- `queued`, `held`, `suppressed`: messages made, held by quiet hours, not sent because the
  policy blocked them (suppression, consent, frequency caps);
- `opened`, `clicked`: messages a person opened, clicked, each once (machines' apart, see
  mailpulse.feedback.machines), as GET /admin/campaigns/{id} counts them;
- `converted`, `revenue`: conversions attributed to a message's last click, and their worth;
- `complained`, `unsubscribed`: feedback reports and unsubscribes about the messages.

Rates (None when what they are of is 0): delivery and bounce rates over the messages whose
delivery ended (`attempted`: sent, refused at SMTP, expired or failed); complaint, open, click
and unsubscribe rates over the messages delivered.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

from mailpulse.runtime.rollup import BOUNCED_LATE, HOUR
from mailpulse.store import StateStore
from mailpulse.store.interface import ROLLUP_DIMENSIONS, RollupRow

Grouping = Literal["all", "campaign", "journey", "template"]
GROUPINGS: tuple[str, ...] = ("all", *ROLLUP_DIMENSIONS)
ALL = "all"
BUCKETS: dict[str, int] = {"hour": HOUR, "day": 24 * HOUR}


@dataclass(frozen=True)
class KpiRow:
    """The figures of one key (a campaign, journey or template id, or "all") over the range,
    or over one bucket of it (`start`) in a series."""

    key: str
    start: datetime | None = None
    queued: int = 0
    held: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    machine_opened: int = 0
    machine_clicked: int = 0
    converted: int = 0
    revenue: float = 0.0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0
    suppressed: int = 0
    deferred: int = 0
    expired: int = 0
    failed: int = 0
    # Bounces reported after the message was sent (counted in `bounced`, and off `delivered`).
    bounced_late: int = field(default=0, repr=False)

    @property
    def attempted(self) -> int:
        """Messages whose delivery ended: sent, refused at SMTP, expired or failed."""
        return self.sent + (self.bounced - self.bounced_late) + self.expired + self.failed

    @property
    def delivery_rate(self) -> float | None:
        return _rate(self.delivered, self.attempted)

    @property
    def bounce_rate(self) -> float | None:
        return _rate(self.bounced, self.attempted)

    @property
    def complaint_rate(self) -> float | None:
        return _rate(self.complained, self.delivered)

    @property
    def open_rate(self) -> float | None:
        return _rate(self.opened, self.delivered)

    @property
    def click_rate(self) -> float | None:
        return _rate(self.clicked, self.delivered)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _rate(self.unsubscribed, self.delivered)

    def to_json(self) -> dict[str, Any]:
        """The figures and rates, as the admin API shows them (the start in ISO 8601)."""
        shown = asdict(self)
        del shown["bounced_late"]
        if self.start is None:
            del shown["start"]
        else:
            shown["start"] = self.start.isoformat().replace("+00:00", "Z")
        shown["revenue"] = round(self.revenue, 2)
        shown["attempted"] = self.attempted
        for rate in RATES:
            value = getattr(self, rate)
            shown[rate] = None if value is None else round(value, 6)
        return shown


RATES = (
    "delivery_rate",
    "bounce_rate",
    "complaint_rate",
    "open_rate",
    "click_rate",
    "unsubscribe_rate",
)
_COUNTED = frozenset(f.name for f in fields(KpiRow)) - {"key", "start", "delivered", "revenue"}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def hours_of(start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """The whole hours (UTC, as epoch seconds: the first, and the one after the last) that a
    range touches; no start is the beginning, no end now. A naive time is taken as UTC."""
    since = 0 if start is None else math.floor(_epoch(start) / HOUR) * HOUR
    until_at = time.time() if end is None else _epoch(end)
    until = math.ceil(until_at / HOUR) * HOUR
    if until == since:
        until += HOUR  # an end on the hour its start is on: that hour
    return since, until


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).timestamp()


async def kpis(
    store: StateStore,
    *,
    start: datetime | None,
    end: datetime | None,
    by: Grouping = "all",
    key: str | None = None,
    bucket: Literal["hour", "day"] | None = None,
) -> list[KpiRow]:
    """The figures of the range (widened to whole hours, see `hours_of`): one row for "all", or
    one per campaign, journey or template that had any (only `key`'s, zeros if none, when
    given); with `bucket`, one per key and hour or day (UTC) instead, empty ones included,
    ordered by key and start. Raises ValueError for a range that ends before it starts, an
    unknown `by` or `bucket`, or a key without `by`."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}, not {by!r}")
    if by == ALL and key is not None:
        raise ValueError("a key needs by (campaign, journey or template)")
    if bucket is not None and bucket not in BUCKETS:
        raise ValueError(f"bucket must be hour or day, not {bucket!r}")
    if start is not None and end is not None and _epoch(end) < _epoch(start):
        raise ValueError("the range ends before it starts")
    since, until = hours_of(start, end)
    step = BUCKETS[bucket] if bucket is not None else 0
    dimension = "" if by == ALL else by
    grouped: dict[tuple[str, int], list[RollupRow]] = {}
    for row in await store.rollup(since, until, by=dimension, key=key, step=step):
        grouped.setdefault((row.group or ALL, row.start), []).append(row)
    keys = sorted({k for k, _ in grouped})
    if not keys and (by == ALL or key is not None):
        keys = [key or ALL]
    if not step:
        return [_row(k, None, grouped.get((k, 0), [])) for k in keys]
    starts = _starts(since, until, step)
    return [_row(k, s, grouped.get((k, s), [])) for k in keys for s in starts]


def series_length(start: datetime | None, end: datetime | None, bucket: str) -> int:
    """How many buckets a series over the range has (per key)."""
    return len(_starts(*hours_of(start, end), BUCKETS[bucket]))


def _starts(since: int, until: int, step: int) -> range:
    """The starts of the buckets of `step` seconds (UTC-aligned) over the hours since-until."""
    return range(since - since % step, until, step)


def _row(key: str, start: int | None, rows: list[RollupRow]) -> KpiRow:
    """The row of `key` (and `start`) from the rollup's sums of it."""
    figures: dict[str, Any] = {}
    revenue = 0.0
    for row in rows:
        if row.figure in _COUNTED:
            figures[row.figure] = figures.get(row.figure, 0) + row.count
        if row.figure == "converted":
            revenue += row.amount
    delivered = max(0, figures.get("sent", 0) - figures.get(BOUNCED_LATE, 0))
    return KpiRow(
        key=key,
        start=None if start is None else datetime.fromtimestamp(start, UTC),
        delivered=delivered,
        revenue=revenue,
        **figures,
    )
