"""A changed segment set is computed from the whole history when the fold starts: the states
equal those of a fold that had the new set from the start, merges and all."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from mailpulse.audience.segments import SegmentSet, parse_segment
from mailpulse.types import Event, SegmentState
from tests.runtime.test_fold import Clock, Harness, identify, running, track


def segments(**texts: str) -> SegmentSet:
    return SegmentSet(
        parse_segment(textwrap.dedent(text), Path(f"{name}.yaml")) for name, text in texts.items()
    )


OLD = segments(buyers="conditions: {performed: Order Completed}\n")
NEW = segments(
    buyers="conditions: {performed: Order Completed}\n",
    browsers="conditions: {performed: Product Viewed, at_least: 2, within: 1h}\n",
    readers="conditions: {email: opened, within: 1d}\n",
    loyal="conditions: {all: [{segment: buyers}, {segment: browsers}]}\n",
)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def history(clock: Clock) -> list[list[Event]]:
    def at(event: Event, seconds: float) -> Event:
        event.received_at = event.timestamp = clock.now + seconds
        return event

    anonymous = Event(
        type="track",
        message_id="m-anon",
        contact_key="anon-1",
        anonymous_id="anon-1",
        event="Product Viewed",
    )
    signed_in = Event(
        type="identify", message_id="m-sign", contact_key="b", user_id="b", anonymous_id="anon-1"
    )
    opened = Event(type="track", message_id="m-open", contact_key="a", event="Email Opened")
    return [
        [identify(1, "a"), identify(2, "b"), identify(3, "c")],
        [at(track(4, "a", "Order Completed"), 0), at(track(5, "a", "Product Viewed"), 1)],
        [at(track(6, "a", "Product Viewed"), 2), at(anonymous, 3), at(opened, 4)],
        [at(track(7, "b", "Product Viewed"), 5), at(track(8, "c", "Product Viewed"), 6)],
        [signed_in],
    ]


async def fold_all(data: Path, clock: Clock, segment_set: SegmentSet) -> None:
    async with running(data, clock, journeys={}, segments=segment_set) as h:
        for batch in history(clock):
            await h.append(batch)
        await settled(h)


async def settled(h: Harness) -> None:
    """Until the fold has applied everything in the log, its own appends included."""
    async with asyncio.timeout(5):
        while await h.state.checkpoint() < await h.log.head() or h.fold.checkpoint == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)


def kept(state: SegmentState) -> tuple[object, ...]:
    return (sorted(state.members), state.recent, state.counts, state.topics, state.evaluated_by)


async def test_a_changed_set_is_backfilled_to_what_a_fold_with_it_from_the_start_has(
    tmp_path: Path, clock: Clock
) -> None:
    await fold_all(tmp_path / "fresh", clock, NEW)
    await fold_all(tmp_path / "changed", clock, OLD)
    async with running(tmp_path / "changed", clock, journeys={}, segments=NEW) as changed:
        fresh = Harness(tmp_path / "fresh", clock)
        await fresh.state.open()
        try:
            for contact_id in ("a", "b", "c"):
                want = await fresh.state.contact(contact_id)
                got = await changed.state.contact(contact_id)
                assert want is not None and got is not None
                assert kept(got.segments) == kept(want.segments), contact_id
            assert await changed.state.segment_set() == NEW.fingerprint
            assert await changed.state.contact("anon-1") is None  # merged into b
            a = await changed.state.contact("a")
            assert a is not None and set(a.segments.members) == {
                "buyers",
                "browsers",
                "readers",
                "loyal",
            }
            # The window's end is a timer, as if the fold had seen the events itself.
            assert await changed.state.next_wake() == min(a.segments.due.values())
        finally:
            await fresh.state.close()


async def test_the_same_set_is_not_computed_again(tmp_path: Path, clock: Clock) -> None:
    await fold_all(tmp_path, clock, NEW)
    async with running(tmp_path, clock, journeys={}, segments=NEW) as h:
        before = await h.state.contact("a")
        assert before is not None and before.segments.members
    # Members keep the moment they entered: nothing was recomputed (it would say "now").
    clock.now += 50
    async with running(tmp_path, clock, journeys={}, segments=NEW) as h:
        after = await h.state.contact("a")
        assert after is not None and after.segments.members == before.segments.members


async def test_a_first_start_computes_nothing_and_leaves_numpy_unloaded(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importing the numpy side now fails, so only a backfill that stays away from it passes.
    monkeypatch.setitem(sys.modules, "mailpulse.audience.segments.backfill", None)
    async with running(tmp_path, clock, journeys={}, segments=NEW) as h:
        assert await h.state.segment_set() == NEW.fingerprint
        await h.append(history(clock)[0])
        await settled(h)
    with pytest.raises(ImportError):  # with contacts, it computes
        async with running(tmp_path, clock, journeys={}, segments=OLD):
            pass
