"""The journey engine: a pure step function over one contact's instance of one journey.

`on_event` and `on_timer` read a definition, an instance and the time, and answer with the
instance to store and the sends to make; the wiring stores, sends and schedules timers. Instance
ids derive from the trigger event and intent keys from instance and step, so processing the
same input twice (replay after a crash) yields the same keys and the outbox drops the repeat.

An instance runs on the definition version it entered with: callers pass that version's
definition, and a mismatch is a programming error (ValueError), never silently the latest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time
from typing import Any, Literal, assert_never

import msgspec
from msgspec.structs import replace

from mailpulse.journeys.definition import (
    BranchStep,
    EntryRule,
    JourneyDefinition,
    SendStep,
    SplitStep,
    Step,
    WaitForStep,
    WaitStep,
    WaitUntilStep,
    step_branches,
)
from mailpulse.policy.localtime import contact_zone, next_local_time, trait_instant
from mailpulse.types import Event

Status = Literal["active", "completed", "exited"]


class JourneyInstance(msgspec.Struct, kw_only=True):
    """One contact's run through one journey version.

    `position` is the step the instance is at, as a path through the step tree: a step's index
    in its list, then for a step with branches (`wait_for`, `split`) the branch taken and the
    index in that branch's list, and so on. While waiting it names the `wait` or `wait_for`;
    once completed it is one past the last top-level step. `trigger` keeps what templates need
    of the trigger event.
    """

    instance_id: str
    journey_id: str
    version: str
    contact_id: str
    status: Status
    position: list[int]
    entered_at: float
    wake_at: float | None
    trigger: dict[str, Any]


def _meets_nothing(step: BranchStep) -> bool:
    return False


@dataclass(frozen=True)
class ContactTime:
    """What steps read of the contact: for a `wait_until`, its traits (`timezone`, date
    traits) and the project's default zone; for a `branch`, whether it meets the condition
    (the fold answers from the contact's segment state)."""

    traits: Mapping[str, Any] = field(default_factory=dict)
    default_timezone: str = "UTC"
    meets: Callable[[BranchStep], bool] = _meets_nothing

    def wake_for(self, step: WaitUntilStep, now: float) -> float:
        where = contact_zone(self.traits, self.default_timezone)
        if step.time is not None:
            return next_local_time(now, time(*step.time), where)
        assert step.trait is not None
        moment = trait_instant(self.traits.get(step.trait), where)
        return now if moment is None else max(now, moment + step.offset)


class SendEffect(msgspec.Struct, kw_only=True):
    """Send `template` to the instance's contact; `intent_key` is the idempotency key."""

    intent_key: str
    template: str
    step_id: str
    message_class: str
    topic: str | None = None


class Transition(msgspec.Struct, kw_only=True):
    """The instance to store (None: nothing changed) and the sends to make, in order.
    `taken` names the way each split and branch passed went, as `<step id>:<arm>` (a
    branch's arms are `then` and `else`), for the journey's report."""

    instance: JourneyInstance | None
    effects: list[SendEffect]
    taken: list[str] = msgspec.field(default_factory=list)


def on_event(
    journey: JourneyDefinition,
    *,
    contact_id: str,
    event: Event,
    active: JourneyInstance | None,
    last_entered_at: float | None,
    now: float,
    contact: ContactTime = ContactTime(),
) -> Transition:
    """Apply one of the contact's events to `journey`.

    `active` is the contact's running instance of this journey, if any (then `journey` must be
    its version); `last_entered_at` the entry time of the contact's latest instance, if any.
    A running instance exits on a goal event; otherwise a trigger event may start a new one,
    as the entry rule allows, and never while one is running.
    """
    if active is not None and active.status == "active":
        _check_version(journey, active)
        if any(goal.matches(event) for goal in journey.exit_on):
            return Transition(instance=replace(active, status="exited", wake_at=None), effects=[])
        waiting = _step_at(journey.steps, active.position)
        if isinstance(waiting, WaitForStep) and waiting.rule.matches(event):
            resumed = replace(active, wake_at=None)
            return _run(journey, resumed, [*active.position, WaitForStep.CAME, 0], now, contact)
        return Transition(instance=None, effects=[])
    if not journey.trigger.matches(event) or not _may_enter(journey.entry, last_entered_at, now):
        return Transition(instance=None, effects=[])
    instance = JourneyInstance(
        instance_id=f"{journey.id}:{contact_id}:{event.message_id}",
        journey_id=journey.id,
        version=journey.version,
        contact_id=contact_id,
        status="active",
        position=[0],
        entered_at=now,
        wake_at=None,
        trigger={
            "event": event.event,
            "properties": dict(event.properties),
            "message_id": event.message_id,
        },
    )
    return _run(journey, instance, [0], now, contact)


def on_timer(
    journey: JourneyDefinition,
    instance: JourneyInstance,
    *,
    now: float,
    contact: ContactTime = ContactTime(),
) -> Transition:
    """Resume `instance` once `now` reaches `wake_at`: after a `wait`, with the next step;
    after a `wait_for` whose event did not come, with its `on_timeout` branch. Early or stale:
    no change. `journey` must be the instance's version. An instance whose position is not a
    waiting step of that version completes.
    """
    if instance.status != "active":
        return Transition(instance=None, effects=[])
    _check_version(journey, instance)
    waiting = _step_at(journey.steps, instance.position)
    if not isinstance(waiting, WaitStep | WaitUntilStep | WaitForStep):
        return Transition(instance=_completed(journey, instance), effects=[])
    if instance.wake_at is None or now < instance.wake_at:
        return Transition(instance=None, effects=[])
    resumed = replace(instance, wake_at=None)
    if isinstance(waiting, WaitForStep):
        return _run(journey, resumed, [*instance.position, WaitForStep.TIMED_OUT, 0], now, contact)
    return _run(journey, resumed, _next(instance.position), now, contact)


def _may_enter(rule: EntryRule, last_entered_at: float | None, now: float) -> bool:
    if last_entered_at is None:
        return True
    if rule.kind == "once_per":
        return now - last_entered_at >= rule.period
    return rule.kind == "always"


def _step_at(steps: list[Step], position: list[int]) -> Step | None:
    """The step at `position`, or None when the position leads nowhere in these steps."""
    if not position or len(position) % 2 == 0:
        return None
    index = position[0]
    if not 0 <= index < len(steps):
        return None
    step = steps[index]
    if len(position) == 1:
        return step
    branches = step_branches(step)
    branch = position[1]
    if not 0 <= branch < len(branches):
        return None
    return _step_at(branches[branch], position[2:])


def _next(position: list[int]) -> list[int]:
    return [*position[:-1], position[-1] + 1]


def _run(
    journey: JourneyDefinition,
    instance: JourneyInstance,
    position: list[int],
    now: float,
    contact: ContactTime,
) -> Transition:
    """Run steps from `position` until a wait or the end. A branch that ends goes on with the
    step after the one it branched from."""
    effects: list[SendEffect] = []
    taken: list[str] = []
    while True:
        step = _step_at(journey.steps, position)
        if step is None:
            if len(position) == 1:
                done = _completed(journey, instance)
                return Transition(instance=done, effects=effects, taken=taken)
            position = _next(position[:-2])  # out of the branch
            continue
        match step:
            case SendStep():
                effects.append(
                    SendEffect(
                        intent_key=f"{instance.instance_id}:{step.id}",
                        template=step.template,
                        step_id=step.id,
                        message_class=step.message_class,
                        topic=step.topic,
                    )
                )
                position = _next(position)
            case WaitStep() | WaitForStep():
                wait = step.seconds if isinstance(step, WaitStep) else step.timeout
                waiting = replace(instance, position=position, wake_at=now + wait)
                return Transition(instance=waiting, effects=effects, taken=taken)
            case WaitUntilStep():
                wake = contact.wake_for(step, now)
                if wake <= now:
                    position = _next(position)
                    continue
                waiting = replace(instance, position=position, wake_at=wake)
                return Transition(instance=waiting, effects=effects, taken=taken)
            case SplitStep():
                arm = step.arm_for(instance.contact_id)
                taken.append(f"{step.id}:{step.arms[arm].name}")
                position = [*position, arm, 0]
            case BranchStep():
                then = contact.meets(step)
                taken.append(f"{step.id}:{'then' if then else 'else'}")
                position = [*position, BranchStep.THEN if then else BranchStep.OTHERWISE, 0]
            case _:
                assert_never(step)


def _completed(journey: JourneyDefinition, instance: JourneyInstance) -> JourneyInstance:
    return replace(instance, status="completed", position=[len(journey.steps)], wake_at=None)


def _check_version(journey: JourneyDefinition, instance: JourneyInstance) -> None:
    if (journey.id, journey.version) != (instance.journey_id, instance.version):
        raise ValueError(
            f"instance {instance.instance_id} runs on {instance.journey_id}@{instance.version}, "
            f"not {journey.id}@{journey.version}: pass the definition of the instance's version"
        )
