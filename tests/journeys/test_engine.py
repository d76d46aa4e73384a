from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.journeys import (
    JourneyDefinition,
    JourneyInstance,
    SendEffect,
    Transition,
    on_event,
    on_timer,
    parse_journey,
)
from mailpulse.types import Event

DAY = 86400.0

POST_PURCHASE = """\
trigger: {event: Order Completed}
entry: always
message_class: transactional
steps:
  - send: order_confirmation
  - wait: 7d
  - send: review_request
    id: review
    message_class: marketing
"""

CART = """\
trigger:
  event: Product Added
  where: {price: {gte: 10}}
entry: once_per 1d
exit_on:
  - event: Order Completed
  - event: Cart Emptied
    where: {reason: {ne: test}}
steps:
  - wait: 1h
  - send: cart_reminder
  - wait: 1d
  - send: last_chance
"""


def journey(text: str, entry: str | None = None, name: str = "j") -> JourneyDefinition:
    if entry is not None:
        text = f"{text}\nentry: {entry}\n"
    return parse_journey(text, Path(f"journeys/{name}.yaml"))


def track(name: str, message_id: str, kind: str = "track", **properties: object) -> Event:
    return Event(
        type=kind,
        message_id=message_id,
        contact_key="c1",
        event=name if kind == "track" else None,
        name=name if kind != "track" else None,
        properties=dict(properties),
    )


def enter(
    j: JourneyDefinition,
    event: Event,
    now: float,
    active: JourneyInstance | None = None,
    last_entered_at: float | None = None,
) -> Transition:
    return on_event(
        j, contact_id="c1", event=event, active=active, last_entered_at=last_entered_at, now=now
    )


def test_trigger_send_wait_timer_send_complete() -> None:
    post = journey(POST_PURCHASE, name="post_purchase")
    first = enter(post, track("Order Completed", "m1", order_id="o1"), now=1000.0)

    instance = first.instance
    assert instance is not None
    assert instance.instance_id == "post_purchase:c1:m1"
    assert (instance.status, instance.position, instance.wake_at) == ("active", [1], 1000 + 7 * DAY)
    assert (instance.version, instance.entered_at) == (post.version, 1000.0)
    assert instance.trigger == {
        "event": "Order Completed",
        "properties": {"order_id": "o1"},
        "message_id": "m1",
    }
    assert first.effects == [
        SendEffect(
            intent_key="post_purchase:c1:m1:s0",
            template="order_confirmation",
            step_id="s0",
            message_class="transactional",
        )
    ]

    early = on_timer(post, instance, now=1000 + 7 * DAY - 1)
    assert early == Transition(instance=None, effects=[])

    late = on_timer(post, instance, now=1000 + 8 * DAY)
    assert late.instance is not None
    assert (late.instance.status, late.instance.position, late.instance.wake_at) == (
        "completed",
        [3],
        None,
    )
    assert late.effects == [
        SendEffect(
            intent_key="post_purchase:c1:m1:review",
            template="review_request",
            step_id="review",
            message_class="marketing",
        )
    ]
    assert on_timer(post, late.instance, now=1000 + 9 * DAY) == Transition(
        instance=None, effects=[]
    )


def test_consecutive_waits_count_from_when_the_timer_fired() -> None:
    cart = journey(CART)
    waiting = enter(cart, track("Product Added", "m1", price=20), now=0.0).instance
    assert waiting is not None and waiting.wake_at == 3600.0
    second = on_timer(cart, waiting, now=3700.0)
    assert [e.template for e in second.effects] == ["cart_reminder"]
    assert second.instance is not None
    assert (second.instance.position, second.instance.wake_at) == ([2], 3700.0 + DAY)


def test_exit_goal_during_a_wait_ends_the_instance() -> None:
    cart = journey(CART)
    waiting = enter(cart, track("Product Added", "m1", price=20), now=0.0).instance
    assert waiting is not None

    test_empty = enter(cart, track("Cart Emptied", "m2", reason="test"), 10.0, active=waiting)
    assert test_empty == Transition(instance=None, effects=[])

    exited = enter(cart, track("Order Completed", "m3"), now=20.0, active=waiting)
    assert exited.effects == []
    assert exited.instance is not None
    assert (exited.instance.status, exited.instance.wake_at) == ("exited", None)
    assert on_timer(cart, exited.instance, now=DAY) == Transition(instance=None, effects=[])


def test_goal_event_without_a_running_instance_changes_nothing() -> None:
    cart = journey(CART)
    assert enter(cart, track("Order Completed", "m1"), now=0.0) == Transition(
        instance=None, effects=[]
    )


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (track("Product Added", "m1", price=5), "filter fails"),
        (track("Product Added", "m1", price="20"), "incomparable property"),
        (track("Product Viewed", "m1", price=20), "other event"),
        (track("Product Added", "m1", kind="page", price=20), "not a track call"),
        (track("Product Added", "m1", kind="screen", price=20), "not a track call"),
    ],
)
def test_event_that_matches_nothing_changes_nothing(event: Event, message: str) -> None:
    cart = journey(CART)
    assert enter(cart, event, now=0.0) == Transition(instance=None, effects=[]), message
    waiting = enter(cart, track("Product Added", "m0", price=20), now=0.0).instance
    assert enter(cart, event, now=1.0, active=waiting) == Transition(instance=None, effects=[])


WELCOME = "trigger: {event: Signed Up}\nsteps:\n  - send: welcome\n"


@pytest.mark.parametrize(
    ("entry", "enters_after"),
    [
        ("once", {1.0: False, DAY: False, 30 * DAY: False}),
        ("once_per 1d", {1.0: False, DAY - 1: False, DAY: True, 30 * DAY: True}),
        ("always", {0.0: True, 1.0: True, DAY: True}),
        (None, {1.0: False, 30 * DAY: False}),
    ],
)
def test_entry_rules(entry: str | None, enters_after: dict[float, bool]) -> None:
    welcome = journey(WELCOME, entry)
    first = enter(welcome, track("Signed Up", "m1"), now=0.0)
    assert first.instance is not None and first.instance.status == "completed"
    for offset, enters in enters_after.items():
        again = enter(welcome, track("Signed Up", "m2"), now=offset, last_entered_at=0.0)
        assert (again.instance is not None) is enters, (entry, offset)
        if enters:
            assert again.instance is not None
            assert again.instance.instance_id == "j:c1:m2"
            assert [e.intent_key for e in again.effects] == ["j:c1:m2:s0"]


def test_always_never_runs_two_instances_at_once() -> None:
    cart = journey(CART.replace("once_per 1d", "always"))
    waiting = enter(cart, track("Product Added", "m1", price=20), now=0.0).instance
    again = enter(cart, track("Product Added", "m2", price=20), 5.0, waiting, last_entered_at=0.0)
    assert again == Transition(instance=None, effects=[])


def test_replaying_an_event_gives_the_same_ids_and_keys() -> None:
    post = journey(POST_PURCHASE)
    event = track("Order Completed", "m1", order_id="o1")
    first = enter(post, event, now=100.0)
    replay = enter(post, event, now=100.0)
    assert replay == first
    # Replayed later, after the first run was stored: the running instance absorbs it.
    assert enter(post, event, 150.0, first.instance, 100.0) == Transition(instance=None, effects=[])
    # With no stored state at all, the ids and keys still come out the same.
    fresh = enter(post, event, now=999.0)
    assert fresh.instance is not None and first.instance is not None
    assert fresh.instance.instance_id == first.instance.instance_id
    assert [e.intent_key for e in fresh.effects] == [e.intent_key for e in first.effects]


def test_a_running_instance_stays_on_its_version() -> None:
    old = journey(POST_PURCHASE, name="post")
    waiting = enter(old, track("Order Completed", "m1"), now=0.0).instance
    assert waiting is not None
    edited = journey(POST_PURCHASE.replace("send: review_request", "send: survey"), name="post")
    assert edited.version != old.version

    with pytest.raises(ValueError, match="pass the definition of the instance's version"):
        on_timer(edited, waiting, now=8 * DAY)
    with pytest.raises(ValueError, match="instance's version"):
        enter(edited, track("Order Completed", "m2"), now=1.0, active=waiting)
    assert [e.template for e in on_timer(old, waiting, now=8 * DAY).effects] == ["review_request"]


@pytest.mark.parametrize("step_index", [3, 10, -1])
def test_instance_beyond_its_steps_completes(step_index: int) -> None:
    post = journey(POST_PURCHASE)
    waiting = enter(post, track("Order Completed", "m1"), now=0.0).instance
    assert waiting is not None
    broken = msgspec.structs.replace(waiting, position=[step_index])
    done = on_timer(post, broken, now=1.0)
    assert done.effects == []
    assert done.instance is not None
    assert (done.instance.status, done.instance.wake_at) == ("completed", None)


def test_instance_round_trips_through_msgspec() -> None:
    post = journey(POST_PURCHASE)
    instance = enter(post, track("Order Completed", "m1", total=12.5), now=0.0).instance
    encoded = msgspec.json.encode(instance)
    assert msgspec.json.decode(encoded, type=JourneyInstance) == instance


class Wiring:
    """What the pipeline does with transitions, kept in memory for the properties below."""

    def __init__(self, definition: JourneyDefinition) -> None:
        self.journey = definition
        self.instances: dict[str, JourneyInstance] = {}
        self.sent: list[tuple[str, str, str]] = []  # (intent key, instance id, step id)
        self.now = 0.0

    def active(self, contact: str) -> list[JourneyInstance]:
        return [
            i for i in self.instances.values() if i.contact_id == contact and i.status == "active"
        ]

    def event(self, contact: str, event: Event) -> None:
        running = self.active(contact)
        entered = [i.entered_at for i in self.instances.values() if i.contact_id == contact]
        transition = on_event(
            self.journey,
            contact_id=contact,
            event=event,
            active=running[0] if running else None,
            last_entered_at=max(entered, default=None),
            now=self.now,
        )
        self.apply(transition)

    def fire(self, contact: str) -> None:
        for instance in self.active(contact):
            self.apply(on_timer(self.journey, instance, now=self.now))

    def apply(self, transition: Transition) -> None:
        if transition.instance is not None:
            self.instances[transition.instance.instance_id] = transition.instance
        for effect in transition.effects:
            assert transition.instance is not None
            self.sent.append((effect.intent_key, transition.instance.instance_id, effect.step_id))


JOURNEYS = [
    journey(POST_PURCHASE),
    journey(CART),
    journey(CART.replace("once_per 1d", "always")),
    journey(CART.replace("once_per 1d", "once")),
    journey(WELCOME, "always"),
]
NAMES = ["Order Completed", "Product Added", "Cart Emptied", "Signed Up", "Other"]
actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("event"),
            st.sampled_from(["a", "b"]),
            st.sampled_from(NAMES),
            st.sampled_from([5, 20]),
        ),
        st.tuples(st.just("advance"), st.sampled_from([1.0, 3600.0, DAY, 8 * DAY])),
        st.tuples(st.just("timer"), st.sampled_from(["a", "b"])),
        st.tuples(st.just("replay"), st.integers(min_value=0, max_value=30)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(definition=st.sampled_from(JOURNEYS), script=actions)
def test_any_run_keeps_one_active_instance_and_one_key_per_step(
    definition: JourneyDefinition, script: list[tuple]
) -> None:
    wiring = Wiring(definition)
    log: list[tuple[str, Event]] = []
    for action in script:
        match action:
            case ("event", contact, name, price):
                event = track(name, f"m{len(log)}", price=price)
                log.append((contact, event))
                wiring.event(contact, event)
            case ("advance", seconds):
                wiring.now += seconds
            case ("timer", contact):
                wiring.fire(contact)
            case ("replay", index) if index < len(log):
                wiring.event(*log[index])
        for contact in ("a", "b"):
            assert len(wiring.active(contact)) <= 1

    owners: dict[str, tuple[str, str]] = {}
    for key, instance_id, step_id in wiring.sent:
        assert key == f"{instance_id}:{step_id}"
        assert owners.setdefault(key, (instance_id, step_id)) == (instance_id, step_id)
    replayed = any(action[0] == "replay" for action in script)
    if not replayed:
        assert len(owners) == len(wiring.sent), "an intent key was emitted twice"
