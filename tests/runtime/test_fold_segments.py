"""Segments in the fold, on a controllable clock: memberships change on events and when a
window passes with no event at all; `Segment Entered` / `Exited` go to the log, start
journeys, and survive a restart and a merge."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mailpulse.audience.segments import SegmentSet, parse_segment
from mailpulse.journeys import parse_journey
from mailpulse.project import load_project
from mailpulse.runtime.fold import SEGMENT_ENTERED, SEGMENT_EXITED, SENDS
from mailpulse.types import Event
from tests.runtime.test_fold import Clock, Harness, anonymous, identify, running, signs_in, track


@pytest.fixture
def clock() -> Clock:
    return Clock()


def segment(segment_id: str, text: str) -> SegmentSet:
    return SegmentSet([parse_segment(textwrap.dedent(text), Path(f"{segment_id}.yaml"))])


CARTED = segment(
    "carted",
    """\
    conditions:
      performed: Product Added
      within: 1h
    """,
)


async def memberships(h: Harness, contact: str) -> list[tuple[str, str]]:
    """The contact's `Segment Entered` / `Exited` events in the log, in order."""
    events = await h.log.for_contact([contact], 1000)
    return [
        (e.event, e.properties["segment"])
        for e in events
        if e.event in (SEGMENT_ENTERED, SEGMENT_EXITED)
    ]


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll the store: the fold and the shipper write it from their own tasks."""
    async with asyncio.timeout(5):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_a_window_passing_with_no_event_takes_the_contact_out(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}, segments=CARTED) as h:
        await h.append([identify(1, "a"), track(2, "a", "Product Added")])

        async def entered() -> bool:
            return await memberships(h, "a") == [(SEGMENT_ENTERED, "carted")]

        await until(entered)
        contact = await h.state.contact("a")
        assert contact is not None and "carted" in contact.segments.members
        assert await h.state.next_wake() == clock.now + 3600
        clock.now += 3599
        await asyncio.sleep(1.2)
        assert await memberships(h, "a") == [(SEGMENT_ENTERED, "carted")]
        clock.now += 1

        async def exited() -> bool:
            return (await memberships(h, "a"))[-1:] == [(SEGMENT_EXITED, "carted")]

        await until(exited)
        contact = await h.state.contact("a")
        assert contact is not None and contact.segments.members == {}
        assert await h.state.next_wake() is None


async def test_a_new_event_keeps_the_contact_in_and_moves_the_timer(
    tmp_path: Path, clock: Clock
) -> None:
    async with running(tmp_path, clock, journeys={}, segments=CARTED) as h:
        await h.append([identify(1, "a"), track(2, "a", "Product Added")])
        first = clock.now
        clock.now += 1800
        later = track(3, "a", "Product Added")
        later.received_at = clock.now
        await h.append([later])

        async def moved() -> bool:
            return await h.state.next_wake() == first + 3600

        await until(moved)
        clock.now = first + 3600  # the first leaves the window, the second is still in it
        await asyncio.sleep(1.2)

        async def rescheduled() -> bool:
            return await h.state.next_wake() == clock.now + 1800

        await until(rescheduled)
        assert await memberships(h, "a") == [(SEGMENT_ENTERED, "carted")]


async def test_entering_a_segment_starts_a_journey(tmp_path: Path, clock: Clock) -> None:
    welcome_vip = parse_journey(
        textwrap.dedent(
            """\
            trigger: {event: Segment Entered, where: {segment: carted}}
            steps:
              - send: carted_offer
            """
        ),
        Path("carted_offer.yaml"),
    )
    journeys = {"carted_offer": welcome_vip}
    async with running(tmp_path, clock, journeys=journeys, segments=CARTED) as h:
        await h.append([identify(1, "a"), track(2, "a", "Product Added")])
        [send] = await h.sends(1)
        assert (send.contact_id, send.template) == ("a", "carted_offer")


async def test_memberships_and_timers_survive_a_restart(tmp_path: Path, clock: Clock) -> None:
    async with running(tmp_path, clock, journeys={}, segments=CARTED) as h:
        await h.append([identify(1, "a"), track(2, "a", "Product Added")])

        async def entered() -> bool:
            return bool(await memberships(h, "a"))

        await until(entered)
    clock.now += 3600
    async with running(tmp_path, clock, journeys={}, segments=CARTED) as h:

        async def exited() -> bool:
            return (await memberships(h, "a"))[-1:] == [(SEGMENT_EXITED, "carted")]

        await until(exited)
        assert await memberships(h, "a") == [
            (SEGMENT_ENTERED, "carted"),
            (SEGMENT_EXITED, "carted"),
        ]


async def test_a_merge_counts_both_histories(tmp_path: Path, clock: Clock) -> None:
    twice = segment(
        "twice",
        """\
        conditions:
          performed: Product Added
          at_least: 2
          within: 1d
        """,
    )
    anon = anonymous(1, "anon-1", "Product Added")
    anon.received_at = clock.now
    async with running(tmp_path, clock, journeys={}, segments=twice) as h:
        await h.append([anon, identify(2, "u"), track(3, "u", "Product Added")])
        await asyncio.sleep(0.3)
        assert await memberships(h, "u") == []
        await h.append([signs_in(4, "u", "anon-1")])

        async def entered() -> bool:
            return await memberships(h, "u") == [(SEGMENT_ENTERED, "twice")]

        await until(entered)


SHOP = load_project(Path(__file__).resolve().parents[2] / "examples" / "shop")
DAY = 86400.0


async def test_win_back_starts_when_60_days_pass_and_follows_up_only_with_readers(
    tmp_path: Path, clock: Clock
) -> None:
    """The example shop's win-back, on a clock that jumps: no event marks the 60 days."""
    journeys = {"win_back": SHOP.journeys["win_back"]}
    async with running(tmp_path, clock, journeys=journeys, segments=SHOP.segment_set()) as h:
        for n, user in enumerate(("reader", "skimmer")):
            order = track(10 + n, user, "Order Completed")
            order.timestamp = order.received_at = clock.now
            await h.append([identify(n, user), order])
        await asyncio.sleep(0.3)
        assert await h.bus.next_batch(SENDS, 0, 10, 0.3) == []
        clock.now += 60 * DAY
        sent = await h.sends(2)
        assert sorted((s.contact_id, s.template) for s in sent) == [
            ("reader", "win_back"),
            ("skimmer", "win_back"),
        ]
        opened = Event(
            type="track",
            message_id="opened-1",
            contact_key="reader",
            event="Email Opened",
            properties={"template": "win_back"},
            received_at=clock.now + DAY,
        )
        await h.append([opened])
        await asyncio.sleep(0.3)
        clock.now += 12 * DAY
        [last] = await h.sends(1)
        assert (last.contact_id, last.template) == ("reader", "win_back_last_chance")
        assert await h.bus.next_batch(SENDS, 0, 10, 0.5) == []
