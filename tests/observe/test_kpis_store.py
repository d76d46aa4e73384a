"""The lifecycle rollup in both stores, and the KPIs summed from it: hours in and out of a range,
grouping by campaign, journey and template, one key alone, hourly and daily series, and what is
refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailpulse.observe.kpis import KpiRow, hours_of, kpis
from mailpulse.store import FoldCommit
from mailpulse.store.interface import RollupRow
from tests.store.conftest import StateFactory, open_state  # noqa: F401 (a fixture)

DAY0 = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp())
H = 3600


def _at(hours: float) -> datetime:
    return datetime.fromtimestamp(DAY0 + hours * H, UTC)


ROWS = [
    (DAY0, "spring", "", "promo", "sent", 10, 0.0),
    (DAY0, "spring", "", "promo", "bounced", 2, 0.0),
    (DAY0, "spring", "", "promo", "bounced_late", 1, 0.0),
    (DAY0, "spring", "", "promo", "opened", 4, 0.0),
    (DAY0 + H, "spring", "", "promo", "clicked", 3, 0.0),
    (DAY0 + H, "spring", "", "promo", "converted", 2, 59.5),
    (DAY0 + H, "", "welcome", "hello", "sent", 5, 0.0),
    (DAY0 + 30 * H, "", "welcome", "hello", "sent", 7, 0.0),
    (DAY0 + 30 * H, "", "", "confirm_subscription", "sent", 1, 0.0),
]


async def _filled(open_state: StateFactory):  # noqa: F811
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=1, rollup=ROWS[:5]))
    await state.commit(FoldCommit(checkpoint=2, rollup=ROWS[5:]))
    # Commits add up: a scanner's first click taken back.
    await state.commit(
        FoldCommit(checkpoint=3, rollup=[(DAY0 + H, "spring", "", "promo", "clicked", -1, 0.0)])
    )
    return state


async def test_rollup_sums_in_both_stores(open_state: StateFactory) -> None:  # noqa: F811
    state = await _filled(open_state)
    whole = await state.rollup(0, DAY0 + 48 * H)
    assert sorted(whole) == sorted(
        [
            RollupRow("", 0, "sent", 23, 0.0),
            RollupRow("", 0, "bounced", 2, 0.0),
            RollupRow("", 0, "bounced_late", 1, 0.0),
            RollupRow("", 0, "opened", 4, 0.0),
            RollupRow("", 0, "clicked", 2, 0.0),
            RollupRow("", 0, "converted", 2, 59.5),
        ]
    )
    # Up to, not with, the end hour; per template and per hour.
    by_template = await state.rollup(DAY0, DAY0 + H, by="template", step=H)
    assert sorted(by_template) == sorted(
        [
            RollupRow("promo", DAY0, "sent", 10, 0.0),
            RollupRow("promo", DAY0, "bounced", 2, 0.0),
            RollupRow("promo", DAY0, "bounced_late", 1, 0.0),
            RollupRow("promo", DAY0, "opened", 4, 0.0),
        ]
    )
    # Messages of no journey are not a journey's.
    assert await state.rollup(0, DAY0 + 48 * H, by="journey") == [
        RollupRow("welcome", 0, "sent", 12, 0.0)
    ]
    daily = await state.rollup(0, DAY0 + 48 * H, by="journey", key="welcome", step=24 * H)
    assert sorted(daily) == [
        RollupRow("welcome", DAY0, "sent", 5, 0.0),
        RollupRow("welcome", DAY0 + 24 * H, "sent", 7, 0.0),
    ]
    assert await state.rollup(0, DAY0 + 48 * H, by="campaign", key="autumn") == []
    with pytest.raises(ValueError, match="dimension"):
        await state.rollup(0, DAY0, by="contact_id; DROP TABLE outbox")


async def test_kpis_of_a_campaign_and_of_everything(open_state: StateFactory) -> None:  # noqa: F811
    state = await _filled(open_state)
    [spring] = await kpis(state, start=_at(0), end=_at(2), by="campaign", key="spring")
    assert spring == KpiRow(
        key="spring",
        sent=10,
        delivered=9,
        bounced=2,
        bounced_late=1,
        opened=4,
        clicked=2,
        converted=2,
        revenue=59.5,
    )
    assert spring.attempted == 11  # 10 accepted, 1 refused at SMTP
    assert spring.delivery_rate == pytest.approx(9 / 11)
    assert spring.bounce_rate == pytest.approx(2 / 11)
    assert spring.open_rate == pytest.approx(4 / 9)
    assert spring.complaint_rate == 0.0
    shown = spring.to_json()
    assert shown["revenue"] == 59.5 and shown["click_rate"] == pytest.approx(2 / 9, abs=1e-6)
    assert "bounced_late" not in shown and "start" not in shown

    [everything] = await kpis(state, start=None, end=_at(48))
    assert (everything.key, everything.sent, everything.delivered) == ("all", 23, 22)
    # A range in the middle of an hour covers the whole hour.
    [late] = await kpis(state, start=_at(30.5), end=_at(30.75))
    assert late.sent == 8
    by_campaign = await kpis(state, start=None, end=_at(48), by="campaign")
    assert [row.key for row in by_campaign] == ["spring"]
    [nothing] = await kpis(state, start=None, end=_at(48), by="campaign", key="autumn")
    assert nothing == KpiRow(key="autumn") and nothing.open_rate is None


async def test_series_have_every_bucket(open_state: StateFactory) -> None:  # noqa: F811
    state = await _filled(open_state)
    hourly = await kpis(state, start=_at(0), end=_at(3), by="journey", bucket="hour")
    assert [(r.start, r.sent) for r in hourly] == [(_at(0), 0), (_at(1), 5), (_at(2), 0)]
    daily = await kpis(state, start=_at(0), end=_at(36), bucket="day")
    assert [(r.start, r.sent) for r in daily] == [(_at(0), 15), (_at(24), 8)]
    # A day the range starts within counts the range's hours of it only.
    partial = await kpis(state, start=_at(12), end=_at(36), bucket="day")
    assert [(r.start, r.sent) for r in partial] == [(_at(0), 0), (_at(24), 8)]
    assert daily[0].to_json()["start"] == "2026-03-02T00:00:00Z"


async def test_what_kpis_refuse(open_state: StateFactory) -> None:  # noqa: F811
    state = await open_state()
    with pytest.raises(ValueError, match="ends before"):
        await kpis(state, start=_at(2), end=_at(1))
    with pytest.raises(ValueError, match="by must be"):
        await kpis(state, start=None, end=None, by="contact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs by"):
        await kpis(state, start=None, end=None, key="spring")
    with pytest.raises(ValueError, match="bucket"):
        await kpis(state, start=None, end=None, bucket="week")  # type: ignore[arg-type]


def test_hours_of_widens_to_whole_hours() -> None:
    assert hours_of(_at(1.25), _at(2.5)) == (DAY0 + H, DAY0 + 3 * H)
    assert hours_of(_at(1), _at(1)) == (DAY0 + H, DAY0 + 2 * H)
    naive = datetime(2026, 3, 2, 1, 15)
    assert hours_of(naive, None)[0] == DAY0 + H
