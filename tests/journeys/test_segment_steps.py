"""Journeys on segments: triggers and goals on entering or leaving one, and `branch` on any
segment condition."""

from pathlib import Path

import pytest

from mailpulse.audience.segments import Segment
from mailpulse.errors import ProjectError
from mailpulse.journeys import ContactTime, JourneyDefinition, on_event, parse_journey
from mailpulse.journeys.definition import BranchStep, branch_segments
from mailpulse.journeys.engine import Transition
from mailpulse.types import Event
from tests.journeys.test_engine import track

BRANCHED = """\
trigger: {segment_entered: carted}
exit_on: [{segment_exited: customers}]
steps:
  - branch: {trait: plan, eq: pro}
    then:
      - send: pro_offer
    else:
      - branch: {performed: Order Completed, within: 30d}
        id: bought
        then: [{send: thanks}]
  - send: survey
"""


def parse(text: str, segments: set[str] | None = None) -> JourneyDefinition:
    return parse_journey(text, Path("journeys/j.yaml"), segment_names=segments)


def run(meets: set[str], event: Event | None = None) -> Transition:
    j = parse(BRANCHED, {"carted", "customers"})
    answer = ContactTime(meets=lambda step: step.id in meets)
    return on_event(
        j,
        contact_id="c1",
        event=event or track("Segment Entered", "m1", segment="carted"),
        active=None,
        last_entered_at=None,
        now=0.0,
        contact=answer,
    )


@pytest.mark.parametrize(
    ("meets", "sent"),
    [
        ({"s0"}, ["pro_offer", "survey"]),
        ({"bought"}, ["thanks", "survey"]),
        (set(), ["survey"]),
    ],
)
def test_a_branch_takes_then_when_the_contact_meets_it_and_goes_on_after(
    meets: set[str], sent: list[str]
) -> None:
    assert [e.template for e in run(meets).effects] == sent


def test_segment_rules_stand_for_the_membership_events() -> None:
    assert run(set(), track("Segment Entered", "m1", segment="other")).instance is None
    j = parse(
        "trigger: {segment_entered: carted}\nexit_on: [{segment_exited: carted}]\n"
        "steps: [{wait: 1h}, {send: reminder}]\n"
    )
    started = on_event(
        j,
        contact_id="c1",
        event=track("Segment Entered", "m1", segment="carted"),
        active=None,
        last_entered_at=None,
        now=0.0,
    ).instance
    assert started is not None and started.status == "active"
    left = on_event(
        j,
        contact_id="c1",
        event=track("Segment Exited", "m2", segment="carted"),
        active=started,
        last_entered_at=0.0,
        now=1.0,
    )
    assert left.instance is not None and left.instance.status == "exited"


def test_branch_conditions_become_segments_the_fold_keeps_current() -> None:
    j = parse(BRANCHED)
    segments = branch_segments([j])
    assert [s.id for s in segments] == [f"j@{j.version}/s0", f"j@{j.version}/bought"]
    assert all(isinstance(s, Segment) and "/" in s.id for s in segments)
    steps = [s for s in j.steps if isinstance(s, BranchStep)]
    assert steps[0].segment_id == segments[0].id


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (
            "trigger: {segment_entered: vipp}\nsteps: [{send: a}]\n",
            1,
            "no segment named 'vipp': did you mean 'vip'?",
        ),
        (
            "trigger: {segment_entered: vip, event: X}\nsteps: [{send: a}]\n",
            1,
            "either event (with where) or segment_entered or segment_exited",
        ),
        (
            "trigger: {event: X}\nexit_on: [{segment_exited: nope}]\nsteps: [{send: a}]\n",
            2,
            "no segment named 'nope'",
        ),
        (
            "trigger: {event: X}\nsteps:\n  - branch: {not: {segment: vi}}\n",
            3,
            "no segment named 'vi': did you mean 'vip'?",
        ),
        (
            "trigger: {event: X}\nsteps:\n  - branch:\n    then: [{send: a}]\n",
            3,
            "say on what the branch decides",
        ),
        (
            "trigger: {event: X}\nsteps:\n  - branch: {trait: plan, equals: pro}\n",
            3,
            "unknown key 'equals' in a condition",
        ),
        (
            "trigger: {event: X}\nsteps:\n  - branch: {trait: plan, eq: pro}\n"
            "    otherwise: [{send: a}]\n",
            4,
            "otherwise",
        ),
    ],
)
def test_bad_segment_rules_and_branches_name_the_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(ProjectError) as caught:
        parse(text, {"vip"})
    assert f"j.yaml:{line}:" in str(caught.value)
    assert reason in str(caught.value)
