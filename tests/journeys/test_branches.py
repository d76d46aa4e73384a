"""Branching steps: `wait_for` an event with a timeout, and A/B/n `split`."""

from collections import Counter
from pathlib import Path

import pytest

from mailpulse.errors import ProjectError
from mailpulse.journeys import JourneyInstance, on_event, on_timer, parse_journey
from tests.journeys.test_engine import enter, journey, track

ABANDONED = """\
trigger: {event: Checkout Started}
entry: always
steps:
  - wait_for:
      event: Order Completed
      where: {total: {gt: 0}}
      timeout: 1h
    then:
      - send: thanks
    on_timeout:
      - send: reminder
      - wait: 1d
      - send: last_chance
  - send: survey
"""

SPLIT = """\
trigger: {event: Signed Up}
steps:
  - split:
      - {arm: control, weight: 1}
      - {arm: offer, weight: 3, steps: [{send: offer}]}
  - send: welcome
"""


def started() -> JourneyInstance:
    waiting = enter(journey(ABANDONED), track("Checkout Started", "m1"), now=0.0).instance
    assert waiting is not None
    return waiting


def test_the_awaited_event_takes_the_then_branch_and_goes_on_after_the_step() -> None:
    waiting = started()
    assert (waiting.position, waiting.wake_at) == ([0], 3600.0)
    # An event that does not match the filter leaves it waiting.
    assert enter(journey(ABANDONED), track("Order Completed", "m2", total=0), 10.0, waiting) == (
        enter(journey(ABANDONED), track("Other", "m3"), 10.0, waiting)
    )
    came = enter(journey(ABANDONED), track("Order Completed", "m2", total=30), 10.0, waiting)
    assert [e.template for e in came.effects] == ["thanks", "survey"]
    assert [e.step_id for e in came.effects] == ["s0-then-0", "s1"]
    assert came.instance is not None and came.instance.status == "completed"


def test_the_timeout_takes_the_other_branch_whose_waits_run_in_turn() -> None:
    j = journey(ABANDONED)
    waiting = started()
    assert on_timer(j, waiting, now=3599.0).instance is None
    timed_out = on_timer(j, waiting, now=3600.0)
    assert [e.template for e in timed_out.effects] == ["reminder"]
    inside = timed_out.instance
    assert inside is not None and (inside.position, inside.wake_at) == ([0, 1, 1], 3600.0 + 86400)
    # Inside the branch, the awaited event is no longer awaited.
    assert enter(j, track("Order Completed", "m2", total=30), 4000.0, inside).instance is None
    done = on_timer(j, inside, now=3600.0 + 86400)
    assert [e.template for e in done.effects] == ["last_chance", "survey"]
    assert done.instance is not None and done.instance.status == "completed"


def test_a_goal_still_ends_a_journey_waiting_for_an_event() -> None:
    text = ABANDONED.replace("entry: always", "entry: always\nexit_on: [{event: Unsubscribed}]")
    waiting = enter(journey(text), track("Checkout Started", "m1"), now=0.0).instance
    gone = on_event(
        journey(text),
        contact_id="c1",
        event=track("Unsubscribed", "m2"),
        active=waiting,
        last_entered_at=0.0,
        now=5.0,
    )
    assert gone.instance is not None and gone.instance.status == "exited"


def test_a_split_sends_each_contact_always_the_same_arm_in_proportion_to_the_weights() -> None:
    j = journey(SPLIT, name="onboarding")
    arms: Counter[str] = Counter()
    for n in range(4000):

        def templates(message_id: str, n: int = n) -> list[str]:
            started = on_event(
                j,
                contact_id=f"c{n}",
                event=track("Signed Up", message_id),
                active=None,
                last_entered_at=None,
                now=0.0,
            )
            return [e.template for e in started.effects]

        first = templates(f"m{n}")
        assert first == templates(f"other-{n}")  # deterministic per contact
        assert first in (["offer", "welcome"], ["welcome"])
        arms["offer" if first == ["offer", "welcome"] else "control"] += 1
    # 3 : 1, within five standard deviations of a binomial(4000, 0.75).
    assert abs(arms["offer"] - 3000) < 5 * (4000 * 0.75 * 0.25) ** 0.5


def test_another_journey_splits_the_same_contacts_independently() -> None:
    ours, theirs = journey(SPLIT, name="a"), journey(SPLIT, name="b")
    same = sum(
        ours.steps[0].arm_for(f"c{n}") == theirs.steps[0].arm_for(f"c{n}")  # type: ignore[union-attr]
        for n in range(2000)
    )
    # Independent 3:1 choices agree with probability 0.625.
    assert abs(same - 1250) < 5 * (2000 * 0.625 * 0.375) ** 0.5


@pytest.mark.parametrize(
    ("steps", "line", "reason"),
    [
        ("  - wait_for: {event: X}\n", 3, "missing `timeout`"),
        ("  - wait_for: {event: X, timeout: 0s}\n", 3, "longer than 0s"),
        ("  - wait_for: {event: X, timeout: 1h, after: 2}\n", 3, "after"),
        ("  - wait_for: {timeout: 1h}\n", 3, "missing `event`"),
        ("  - split:\n      - {weight: 1}\n", 4, "at least two arms"),
        ("  - split:\n      - {weight: 1}\n      - {weight: 0}\n", 5, "above 0"),
        ("  - split:\n      - {weight: 1}\n      - {}\n", 5, "missing `weight`"),
        ("  - split:\n      - {arm: x, weight: 1}\n      - {arm: x, weight: 1}\n", 5, "twice"),
        (
            "  - wait_for: {event: X, timeout: 1h}\n    then: [{send: a, id: dup}]\n"
            "    on_timeout: [{send: b, id: dup}]\n",
            5,
            "used twice",
        ),
        (
            "  - wait_for: {event: X, timeout: 1h}\n    on_timeout: [{send: nope}]\n",
            4,
            "no template named 'nope'",
        ),
    ],
)
def test_bad_branching_steps_name_the_line_and_the_fix(steps: str, line: int, reason: str) -> None:
    text = f"trigger: {{event: Signed Up}}\nsteps:\n{steps}"
    with pytest.raises(ProjectError) as caught:
        parse_journey(text, Path("journeys/j.yaml"), template_names={"a", "b"})
    assert f"j.yaml:{line}:" in str(caught.value)
    assert reason in str(caught.value)


def test_a_then_branch_a_goal_always_preempts_is_refused_as_unreachable() -> None:
    text = (
        "trigger: {event: Checkout Started}\n"
        "exit_on: [{event: Order Completed}]\n"
        "steps:\n"
        "  - wait_for: {event: Order Completed, where: {total: {gt: 0}}, timeout: 1h}\n"
        "    then: [{send: a}]\n"
    )
    with pytest.raises(ProjectError) as caught:
        parse_journey(text, Path("journeys/j.yaml"), template_names={"a"})
    assert "j.yaml:5:" in str(caught.value)
    assert "this `then` never runs" in str(caught.value)
    # A goal narrower than the awaited event leaves `then` reachable.
    narrower = text.replace(
        "[{event: Order Completed}]", "[{event: Order Completed, where: {vip: true}}]"
    )
    assert parse_journey(narrower, Path("journeys/j.yaml"), template_names={"a"}).exit_on
