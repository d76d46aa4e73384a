"""The runner's phases for an A/B-tested campaign, against real SQLite files and a real fold:
the test share gets its variants, the folds count each contact once, the decision is taken
when its time comes and stored with its numbers, and the rest gets what it says; a new runner
(a restart) goes on from the stored phase, and a pause or a person's pick is respected."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mailpulse.campaigns import Campaign, campaign_from_data
from mailpulse.campaigns.abtest import AbTest, variant_in_test
from mailpulse.campaigns.decision import decode_decision, picked
from mailpulse.campaigns.definition import AHEAD, PAGE
from mailpulse.campaigns.runner import CampaignRunner
from mailpulse.project import CampaignsSection
from mailpulse.runtime.fold import CACHED_CONTACTS
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.store import CampaignRecord
from mailpulse.types import Event, SendIntent
from tests.runtime.test_fold import Clock, Harness, identify, running

PEOPLE = [f"u{n:02}" for n in range(60)]
AB_TEST = {
    "variants": [{"id": "a"}, {"id": "b", "subject": "Last chance, {{ contact.id }}"}],
    "test_share": 0.5,
    "wait": "1m",
    "winner_by": "opens",
}


def runner(h: Harness) -> CampaignRunner:
    """A runner as a restart makes it: all it knows is in the store."""
    return CampaignRunner(log=h.log, state=h.state, append=h.append, clock=h.clock, page=7)


async def start(h: Harness, **ab_test: Any) -> dict[str, str]:
    """The people, and a campaign testing on them; who is in its test share, with what."""
    await h.append([identify(n, user) for n, user in enumerate(PEOPLE)])
    data = {"id": "sale", "template": "welcome", "audience": "all"}
    data["ab_test"] = {**AB_TEST, **ab_test}
    campaign = campaign_from_data(data, templates={"welcome"}, segments=(), now=h.clock.now)
    body = msgspec.json.encode(campaign)
    assert await h.state.create_campaign("sale", "scheduled", body, h.clock.now)
    assert campaign.ab_test is not None
    tested = {u: variant_in_test("sale", u, campaign.ab_test) for u in PEOPLE}
    return {u: v for u, v in tested.items() if v is not None}


def ab_test_of(state: CampaignRecord) -> AbTest:
    ab_test = msgspec.json.decode(state.body, type=Campaign).ab_test
    assert ab_test is not None
    return ab_test


async def record(h: Harness) -> CampaignRecord:
    found = await h.state.campaign("sale")
    assert found is not None
    return found


async def steps_until(h: Harness, status: str) -> None:
    for _ in range(50):
        if (await record(h)).status == status:
            return
        await runner(h).step()
    raise AssertionError(f"never {status}: {await record(h)}")


def engagement(name: str, user: str, n: int, **properties: object) -> Event:
    return Event(
        type="track",
        message_id=f"{name}:{user}:{n}",
        contact_key=user,
        user_id=user,
        event=name,
        properties=dict(properties),
    )


async def counted(h: Harness, want: dict[tuple[str, str], int]) -> None:
    async with asyncio.timeout(5):
        while await h.state.variant_counts("sale") != want:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def sent(h: Harness, intents: list[SendIntent]) -> None:
    """What the sender appends once each message has its 250."""
    await h.append([lifecycle_event(Lifecycle.SENT, i, h.clock.now) for i in intents])


async def test_the_test_share_the_decision_and_the_rest(tmp_path: Path) -> None:
    clock = Clock()
    async with running(tmp_path, clock, journeys={}) as h:
        tested = await start(h)
        assert 15 < len(tested) < 45 and set(tested.values()) == {"a", "b"}
        await steps_until(h, "testing")
        test_sends = await h.sends(len(tested))
        assert {i.contact_id: i.variant for i in test_sends} == tested
        for intent in test_sends:
            assert intent.key == f"campaign:sale:{intent.contact_id}"
            assert intent.context["campaign"] == {"id": "sale", "variant": intent.variant}
            b = intent.variant == "b"
            assert intent.subject == (AB_TEST["variants"][1]["subject"] if b else None)
        state = await record(h)
        assert (state.phase, state.decide_at, state.decision) == ("wait", clock.now + 60, None)

        # Every b opens, one of them three times and once naming only the campaign; no a does.
        await sent(h, test_sends)
        opened = [u for u, v in tested.items() if v == "b"]
        opens = [engagement("Email Opened", u, 0, key=f"campaign:sale:{u}") for u in opened]
        opens += [engagement("Email Opened", opened[0], n, campaign="sale") for n in (1, 2)]
        opens.append(engagement("Email Opened", "u-stranger", 0, campaign="sale"))
        await h.append(opens)
        per_variant = {v: sum(1 for x in tested.values() if x == v) for v in "ab"}
        await counted(
            h,
            {("a", "sent"): per_variant["a"], ("b", "sent"): per_variant["b"]}
            | {("b", "opens"): per_variant["b"]},
        )

        assert not await runner(h).step()  # not yet its time
        clock.now += 61
        await steps_until(h, "sent")
        state = await record(h)
        assert state.phase == "rest" and state.decision is not None
        decision = decode_decision(state.decision)
        assert (decision.winner, decision.rest, decision.by) == ("b", ["b"], "test")
        assert decision.p is not None and decision.p < 0.05
        figures = {f.id: (f.sent, f.opens, f.rate) for f in decision.variants}
        assert figures == {
            "a": (per_variant["a"], 0, 0.0),
            "b": (per_variant["b"], per_variant["b"], 1.0),
        }

        rest = await h.sends(len(PEOPLE) - len(tested))
        assert {i.contact_id for i in rest} == set(PEOPLE) - set(tested)
        assert {i.variant for i in rest} == {"b"}
        assert all(i.subject == AB_TEST["variants"][1]["subject"] for i in rest)
        rows = await h.state.outbox_for_contact(PEOPLE, 1000)
        assert sorted(r.intent.contact_id for r in rows) == PEOPLE  # one message each
        assert state.appended == len(PEOPLE)


async def test_undecided_the_rest_is_split_or_waits_for_a_pick(tmp_path: Path) -> None:
    clock = Clock()
    async with running(tmp_path, clock, journeys={}) as h:
        tested = await start(h, if_undecided="hold", test_share=0.3)
        await steps_until(h, "testing")
        await h.sends(len(tested))
        # Paused while testing: its time passes, and nothing is decided until it resumes.
        await h.state.set_campaign_status("sale", "paused", clock.now)
        clock.now += 61
        assert not await runner(h).step()
        await h.state.set_campaign_status("sale", "testing", clock.now)  # as a resume does
        await steps_until(h, "awaiting decision")
        state = await record(h)
        assert state.decision is not None
        undecided = decode_decision(state.decision)
        assert (undecided.winner, undecided.rest, undecided.p) == (None, [], 1.0)
        assert not await runner(h).step()  # it waits for a person

        # A person picks a: as the admin API does.
        pick = picked(ab_test_of(state), await h.state.variant_counts("sale"), "a", clock.now)
        assert await h.state.set_campaign_phase(
            state,
            status="testing",
            cursor=state.cursor,
            phase=state.phase,
            decide_at=state.decide_at,
            decision=msgspec.json.encode(pick),
            at=clock.now,
        )
        await steps_until(h, "sent")
        rest = await h.sends(len(PEOPLE) - len(tested))
        assert {i.variant for i in rest} == {"a"}
        decision = decode_decision((await record(h)).decision or b"")
        assert (decision.winner, decision.by) == ("a", "operator")


@pytest.mark.parametrize("if_undecided", ["split", "first"])
async def test_undecided_without_hold(tmp_path: Path, if_undecided: str) -> None:
    clock = Clock()
    async with running(tmp_path, clock, journeys={}) as h:
        tested = await start(h, if_undecided=if_undecided, test_share=0.2)
        await steps_until(h, "testing")
        await h.sends(len(tested))
        clock.now += 61
        await steps_until(h, "sent")
        rest = await h.sends(len(PEOPLE) - len(tested))
        got = {i.variant for i in rest}
        assert got == ({"a", "b"} if if_undecided == "split" else {"a"})


async def test_a_pick_during_the_test_sends_skips_the_wait(tmp_path: Path) -> None:
    clock = Clock()
    async with running(tmp_path, clock, journeys={}) as h:
        tested = await start(h, wait="1d")
        await runner(h).step()  # the first page only
        state = await record(h)
        assert state.status == "sending"
        pick = msgspec.json.encode(picked(ab_test_of(state), {}, "b", clock.now))
        assert await h.state.set_campaign_phase(
            state,
            status="sending",
            cursor=state.cursor,
            phase=state.phase,
            decide_at=None,
            decision=pick,
            at=clock.now,
        )
        await steps_until(h, "sent")  # no day's wait
        sends = await h.sends(len(PEOPLE))
        assert {i.contact_id: i.variant for i in sends if i.contact_id in tested} == tested
        assert {i.variant for i in sends if i.contact_id not in tested} == {"b"}


def test_a_campaigns_backlog_fits_the_folds_contact_cache() -> None:
    # Else every recipient's Email Sent reads its contact again: at 2,000 waiting and a
    # page of 1,000 a broadcast's folds loaded each contact once; at 5,000, 1.75 times.
    assert AHEAD + PAGE < CACHED_CONTACTS
    defaults = CampaignsSection()
    assert (defaults.ahead, defaults.page) == (AHEAD, PAGE)
