"""Segment backfill: every contact's segment state at once, from the whole history.

A seeded shop: 1,000,000 contacts (plan, lifetime value, sign-up time, first/last seen) and
10,000,000 events over 90 days (Product Viewed/Added with a category, Order Completed, Email
Opened with a template, topic (un)subscriptions; a few contacts very busy, most quiet; some
received late), and the example shop's segments plus six more (windows with a `where`,
not-performed, traits, dates, a topic). The history is made as columns directly, since ten
million `Event` objects would not fit a budget of memory; the columns built from `Event`s
(`build_history`, how the runtime feeds a backfill from the log) are timed on a sample of the
same events, checked equal to the direct ones, and extrapolated. The memberships of a sample
of contacts are checked against the full recomputation from their events.

Prints one JSON line: `backfill_s` is the median over runs of `backfill` (history columns and
contacts in, every membership, due moment and aggregate out, columnar); `states_s` of making
every contact's `SegmentState` from it; the target is 10 s.

usage: python -m bench.segment_backfill [--runs 3] [--contacts 1000000] [--events 10000000]
       [--build-sample 1000000] [--check 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from bench.common import ROOT, median
from mailpulse.audience.segments import (
    Segment,
    SegmentSet,
    full_membership,
    load_segments,
    segment_from_data,
)
from mailpulse.audience.segments.backfill import (
    ABSENT,
    History,
    PropertyColumn,
    backfill,
    build_history,
)
from mailpulse.types import Contact, Event

TARGET_S = 10
DAY = 86400.0
NOW = 1_780_000_000.0
# Event names, how often each occurs, and the property each carries that a filter reads.
NAMES = (
    "Product Viewed",
    "Product Added",
    "Order Completed",
    "Email Opened",
    "Topic Subscribed",
    "Topic Unsubscribed",
)
SHARES = (0.50, 0.15, 0.05, 0.26, 0.03, 0.01)
CATEGORIES = ("shoes", "shirts", "hats", "bags", "socks", "jackets", "watches", "toys")
TEMPLATES = ("weekly", "promo", "receipt")
TOPICS = ("newsletter", "offers")
PROPERTY = {
    "Product Viewed": ("category", CATEGORIES),
    "Product Added": ("category", CATEGORIES),
    "Email Opened": ("template", TEMPLATES),
    "Topic Subscribed": ("topic", TOPICS),
    "Topic Unsubscribed": ("topic", TOPICS),
}
LIFECYCLE = "Email Opened"  # mailpulse's own event: says nothing about when the contact was seen
PLANS = ("free", "pro", "team")
EXTRA_SEGMENTS: dict[str, Any] = {
    "shoe_browsers": {
        "performed": "Product Viewed",
        "where": {"category": "shoes"},
        "at_least": 3,
        "within": "7d",
    },
    "lapsed_buyers": {
        "all": [
            {"performed": "Order Completed"},
            {"not_performed": "Order Completed", "within": "60d"},
        ]
    },
    "cart_abandoners": {
        "all": [
            {"performed": "Product Added", "within": "1d"},
            {"not_performed": "Order Completed", "within": "1d"},
        ]
    },
    "paying_veterans": {
        "all": [
            {"trait": "plan", "in": ["pro", "team"]},
            {"trait": "signed_up_at", "before": "365d"},
        ]
    },
    "new_signups": {"trait": "signed_up_at", "within": "30d"},
    "weekly_readers": {
        "all": [
            {"email": "opened", "template": "weekly", "within": "30d"},
            {"subscribed": "newsletter"},
        ]
    },
}


def shop_segments() -> list[Segment]:
    examples = [s for path in ROOT.glob("examples/*/segments") for s in load_segments(path)]
    extra = [
        segment_from_data(segment_id, {"conditions": condition})
        for segment_id, condition in EXTRA_SEGMENTS.items()
    ]
    return examples + extra


class Shop:
    """The generated events, as rows of columns; the contacts, made from them."""

    def __init__(self, contacts: int, events: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.ids = [f"user-{index}" for index in range(contacts)]
        self.name = rng.choice(len(NAMES), size=events, p=SHARES).astype(np.int32)
        # Squared uniform: a few contacts do a lot, most little or nothing.
        self.contact = (contacts * rng.random(events) ** 2).astype(np.int32)
        # In log order: mostly in time, 2% received up to an hour before earlier ones.
        self.received_at = np.sort(NOW - 90 * DAY * rng.random(events))
        late = rng.random(events) < 0.02
        self.received_at[late] -= 3600 * rng.random(int(late.sum()))
        # Per event, the index of its property's value (in PROPERTY's values of its name).
        self.value = rng.integers(0, 8, size=events).astype(np.int32)
        for code, name in enumerate(NAMES):
            if name in PROPERTY:
                of_name = self.name == code
                self.value[of_name] %= len(PROPERTY[name][1])
        self.contacts = self._contacts(rng)

    def _contacts(self, rng: np.random.Generator) -> list[Contact]:
        count = len(self.ids)
        own = self.name != NAMES.index(LIFECYCLE)
        first, last = np.full(count, np.inf), np.zeros(count)
        np.minimum.at(first, self.contact[own], self.received_at[own])
        np.maximum.at(last, self.contact[own], self.received_at[own])
        first[np.isinf(first)] = 0.0
        plans = rng.choice(len(PLANS), size=count, p=(0.7, 0.2, 0.1)).tolist()
        values = rng.exponential(150, size=count).astype(int).tolist()
        signed_up = NOW - 3 * 365 * DAY * rng.random(count)
        iso = np.datetime_as_string(signed_up.astype("datetime64[s]"), unit="s").tolist()
        return [
            Contact(
                id=contact_id,
                traits={"plan": PLANS[plan], "lifetime_value": value, "signed_up_at": f"{at}Z"},
                first_seen=first_seen,
                last_seen=last_seen,
            )
            for contact_id, plan, value, at, first_seen, last_seen in zip(
                self.ids, plans, values, iso, first.tolist(), last.tolist(), strict=True
            )
        ]

    def history(self, segments: SegmentSet) -> History:
        """The columns `build_history` makes from these events, made directly."""
        wanted = build_history(segments, [], []).wanted
        if set(wanted) != set(NAMES):
            raise SystemExit(f"the segments count {sorted(wanted)}, the shop makes {NAMES}")
        code = np.array([list(wanted).index(name) for name in NAMES], dtype=np.int32)
        properties = {}
        for path in {path for paths in wanted.values() for path in paths}:
            carrying = [
                n
                for n, name in enumerate(NAMES)
                if path in wanted[name] and (PROPERTY.get(name, ("",))[0],) == path
            ]
            if not carrying:  # read by a filter, carried by none of these events (`machine`)
                needing = [n for n, name in enumerate(NAMES) if path in wanted[name]]
                codes = np.where(np.isin(self.name, needing), 0, -1).astype(np.int32)
                properties[path] = PropertyColumn(codes, [ABSENT])
                continue
            values = PROPERTY[NAMES[carrying[0]]][1]
            codes = np.where(np.isin(self.name, carrying), self.value, -1).astype(np.int32)
            properties[path] = PropertyColumn(codes, values)
        return History(
            contact=self.contact,
            name=code[self.name],
            received_at=self.received_at,
            wanted=wanted,
            properties=properties,
        )

    def events(self, rows: np.ndarray) -> Iterator[Event]:
        """The events at `rows`, as the log holds them."""
        for row, name, contact, at, value in zip(
            rows.tolist(),
            self.name[rows].tolist(),
            self.contact[rows].tolist(),
            self.received_at[rows].tolist(),
            self.value[rows].tolist(),
            strict=True,
        ):
            yield Event(
                type="track",
                message_id=f"m-{row}",
                contact_key=self.ids[contact],
                user_id=None if NAMES[name] == LIFECYCLE else self.ids[contact],
                event=NAMES[name],
                properties=_properties(NAMES[name], row, value),
                timestamp=at,
                received_at=at,
            )


def _properties(name: str, row: int, value: int) -> dict[str, Any]:
    if name == "Order Completed":
        return {"order_id": f"o-{row}", "total": round(20 + row % 480 + 0.99, 2), "currency": "USD"}
    key, values = PROPERTY[name]
    if key == "category":
        return {"product_id": f"p-{row % 977}", key: values[value], "price": 9.99 + row % 90}
    return {key: values[value], "journey": "news"} if key == "template" else {key: values[value]}


def time_build(shop: Shop, segments: SegmentSet, history: History, sample: int) -> dict[str, Any]:
    """`build_history` over the first `sample` events as `Event`s; checked against the
    direct columns, extrapolated to all of them."""
    rows = np.arange(min(sample, len(history)))
    events = list(shop.events(rows))
    start = time.perf_counter()
    build_history(segments, shop.ids, [])
    fixed = time.perf_counter() - start  # the index of the contacts' ids
    start = time.perf_counter()
    built = build_history(segments, shop.ids, events)
    sample_s = time.perf_counter() - start
    _check_columns(built, history, rows)
    per_event = (sample_s - fixed) / max(len(rows), 1)
    return {
        "sample_events": len(rows),
        "sample_s": round(sample_s, 3),
        "contact_index_s": round(fixed, 3),
        "events_per_s": round(1 / per_event) if per_event > 0 else None,
        "extrapolated_s": round(fixed + per_event * len(history), 2),
    }


def _check_columns(built: History, direct: History, rows: np.ndarray) -> None:
    assert built.wanted == direct.wanted
    assert np.array_equal(built.contact, direct.contact[rows])
    assert np.array_equal(built.name, direct.name[rows])
    assert np.array_equal(built.received_at, direct.received_at[rows])
    for path, column in built.properties.items():
        other = direct.properties[path]
        assert np.array_equal(column.codes >= 0, other.codes[rows] >= 0)
        assert [column.values[c] for c in column.codes[column.codes >= 0].tolist()] == [
            other.values[c] for c in other.codes[rows][other.codes[rows] >= 0].tolist()
        ]


def check_memberships(
    shop: Shop, segments: SegmentSet, members: dict[str, set[int]], count: int
) -> int:
    """The memberships of `count` contacts, evenly spread, recomputed from their events."""
    sample = np.unique(np.linspace(0, len(shop.ids) - 1, num=count).astype(np.int32))
    rows = np.flatnonzero(np.isin(shop.contact, sample))
    history: dict[int, list[Event]] = {index: [] for index in sample.tolist()}
    for row, event in zip(rows.tolist(), shop.events(rows), strict=True):
        history[int(shop.contact[row])].append(event)
    for index, events in history.items():
        for segment in segments.segments:
            inside = full_membership(segment, shop.contacts[index], events, NOW)
            assert inside == (index in members[segment.id]), (segment.id, index)
    return len(history)


def run(args: argparse.Namespace) -> dict[str, Any]:
    segments = SegmentSet(shop_segments())
    shop = Shop(args.contacts, args.events, args.seed)
    history = shop.history(segments)
    runs, states_runs = [], []
    for _ in range(args.runs):
        gc.collect()
        start = time.perf_counter()
        result = backfill(segments, shop.contacts, history, NOW)
        runs.append(time.perf_counter() - start)
        start = time.perf_counter()
        states = result.states()
        states_runs.append(time.perf_counter() - start)
        del states
    members = {s.id: set(result.members(s.id).tolist()) for s in segments.segments}
    checked = check_memberships(shop, segments, members, args.check)
    build = time_build(shop, segments, history, args.build_sample)
    backfill_s = median(runs)
    return {
        "bench": "segment_backfill",
        "contacts": args.contacts,
        "events": args.events,
        "history_events": len(history),
        "segments": len(segments.segments),
        "runs": args.runs,
        "backfill_s": round(backfill_s, 3),
        "all_runs_s": [round(r, 3) for r in runs],
        "events_per_s": round(len(history) / backfill_s),
        "states_s": round(median(states_runs), 3),
        "all_states_runs_s": [round(r, 3) for r in states_runs],
        "backfill_and_states_s": round(backfill_s + median(states_runs), 3),
        "target_s": TARGET_S,
        "members": {segment_id: len(ids) for segment_id, ids in members.items()},
        "checked_contacts": checked,
        "build_from_events": build,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--build-sample", type=int, default=1_000_000)
    parser.add_argument("--check", type=int, default=200, help="contacts to recompute")
    parser.add_argument("--seed", type=int, default=7)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
