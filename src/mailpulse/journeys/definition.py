"""Journey definitions: `journeys/*.yaml`, one journey per file, its id the file stem.

Everything a person can get wrong is caught here, at load, with the file, the line and the fix;
the engine then trusts the definition.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import ClassVar

import msgspec
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailpulse.audience.segments import Condition, Segment, condition_at
from mailpulse.audience.segments.conditions import condition_version, referenced
from mailpulse.errors import ProjectError
from mailpulse.events.filters import FILTER_OPS, EventMatch, Filter, compile_filter
from mailpulse.policy.topics import unknown_topic
from mailpulse.types import MessageClass
from mailpulse.units import parse_duration
from mailpulse.yamlnodes import NodeReader, compose, is_null, suggest

# Ids end up inside instance ids and intent keys, joined by ':'.
_ID = re.compile(r"[A-Za-z0-9_.-]+")
_TOP_KEYS = ("name", "trigger", "entry", "message_class", "topic", "exit_on", "steps")
_RULE_KEYS = ("event", "where", "segment_entered", "segment_exited")
# A rule on segment membership stands for the event the fold appends when it changes.
_SEGMENT_RULES = {"segment_entered": "Segment Entered", "segment_exited": "Segment Exited"}
_ENTRY_KINDS = ("once", "once_per", "always")
_MESSAGE_CLASSES = tuple(c.value for c in MessageClass)
_STEP_KEYS = {
    "send": ("send", "id", "message_class", "topic"),
    "wait": ("wait", "id"),
    "wait_for": ("wait_for", "id", "then", "on_timeout"),
    "wait_until": ("wait_until", "id"),
    "split": ("split", "id"),
    "branch": ("branch", "id", "then", "else"),
}
_WAIT_FOR_KEYS = ("event", "where", "timeout")
_ARM_KEYS = ("arm", "weight", "steps")
_WAIT_UNTIL_KEYS = ("time", "trait", "offset")
_WAIT_UNTIL_EXAMPLE = (
    "- wait_until: {time: '09:00'}\nor\n- wait_until: {trait: renewal_date, offset: -3d}"
)
_TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_WAIT_FOR_EXAMPLE = (
    "- wait_for:\n    event: Order Completed\n    timeout: 1d\n  on_timeout:\n    - send: reminder"
)
_SPLIT_EXAMPLE = (
    "- split:\n    - {arm: a, weight: 50, steps: [{send: offer_a}]}\n"
    "    - {arm: b, weight: 50, steps: [{send: offer_b}]}"
)
_BRANCH_EXAMPLE = (
    "- branch: {segment: vip}\n  then:\n    - send: vip_offer\n  else:\n    - send: offer"
)
_ALL_STEP_KEYS = sorted({key for keys in _STEP_KEYS.values() for key in keys})
_STEPS_EXAMPLE = "steps:\n  - send: welcome"
_TRIGGER_EXAMPLE = "trigger:\n  event: Signed Up"
_TRIGGER_KEYS = (*_RULE_KEYS, "fan_out")
_FAN_OUT_KEYS = ("catalog", "performed", "key", "within")
_FAN_OUT_EXAMPLE = (
    "trigger:\n  event: Back In Stock\n  fan_out:\n    catalog: products\n"
    "    performed: [Product Viewed, Product Added to Wishlist]\n    key: product_id\n"
    "    within: 30d"
)
_GOAL_EXAMPLE = "exit_on:\n  - event: Order Completed"


class EventRule(EventMatch, frozen=True):
    """A `track` event by name, with property filters that must all hold."""


class FanOut(msgspec.Struct, frozen=True):
    """The trigger event is about an object (its contact key is `object:<catalog>:<id>`), not a
    person: the fold sends it on to every contact who did one of `performed` with property
    `key` equal to the object's id in the last `within` seconds, and the journey starts for
    each of them."""

    catalog: str
    performed: tuple[str, ...]
    key: str
    within: float


class Trigger(EventRule, frozen=True):
    """The event that starts a journey."""

    fan_out: FanOut | None = None


class GoalRule(EventRule, frozen=True):
    """An event that ends a running journey at once."""


class EntryRule(msgspec.Struct, frozen=True):
    """When a contact may enter: `once` ever, `once_per` a period, or `always` (one at a time)."""

    kind: str
    period: float = 0.0


class SendStep(msgspec.Struct, frozen=True, tag="send"):
    """Send `template`; `topic` (the journey's unless the step names one) is what the contact
    subscribes to and what a per-topic frequency cap counts."""

    id: str
    template: str
    message_class: str
    topic: str | None = None


class WaitStep(msgspec.Struct, frozen=True, tag="wait"):
    id: str
    seconds: float


class WaitUntilStep(msgspec.Struct, frozen=True, tag="wait_until"):
    """Wait until a time of day on the contact's clock (`time`, hours and minutes), or until
    the moment in a date trait plus `offset` seconds (negative: before it). A trait that is
    missing, unreadable or already past does not hold the journey up."""

    id: str
    time: tuple[int, int] | None = None
    trait: str | None = None
    offset: float = 0.0


class WaitForStep(msgspec.Struct, frozen=True, tag="wait_for"):
    """Wait up to `timeout` seconds for an event: `came` runs if it comes, `timed_out` if not;
    either way the journey then goes on after this step."""

    CAME: ClassVar[int] = 0  # branch numbers, in an instance's position
    TIMED_OUT: ClassVar[int] = 1

    id: str
    rule: EventRule
    timeout: float
    came: list[Step]
    timed_out: list[Step]


class SplitArm(msgspec.Struct, frozen=True):
    name: str
    weight: float
    steps: list[Step]


class SplitStep(msgspec.Struct, frozen=True, tag="split"):
    """A/B/n: each contact takes one arm, with probability proportional to its weight, and
    always the same one (the choice hashes `salt` and the contact id)."""

    id: str
    salt: str
    arms: list[SplitArm]

    def arm_for(self, contact_id: str) -> int:
        digest = hashlib.sha256(f"{self.salt}:{contact_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * sum(a.weight for a in self.arms)
        for index, arm in enumerate(self.arms):
            point -= arm.weight
            if point < 0:
                return index
        return len(self.arms) - 1  # rounding at the very top


class BranchStep(msgspec.Struct, frozen=True, tag="branch"):
    """Take `then` when the contact meets `condition` (any segment condition), else
    `otherwise`; either way the journey then goes on after this step. The fold keeps the
    condition up to date like a segment's, under `segment_id`."""

    THEN: ClassVar[int] = 0  # branch numbers, in an instance's position
    OTHERWISE: ClassVar[int] = 1

    id: str
    segment_id: str
    condition: Condition
    then: list[Step]
    otherwise: list[Step]


Step = SendStep | WaitStep | WaitUntilStep | WaitForStep | SplitStep | BranchStep


class JourneyDefinition(msgspec.Struct, frozen=True):
    """One journey at one version (a hash of its file's text)."""

    id: str
    name: str
    trigger: Trigger
    entry: EntryRule
    message_class: str
    exit_on: list[GoalRule]
    steps: list[Step]
    version: str


def branch_segment_id(journey_id: str, version: str, step_id: str) -> str:
    """The id under which the fold keeps a branch's condition current. It holds a '/', which
    no project segment's id can: see `is_audience`."""
    return f"{journey_id}@{version}/{step_id}"


def is_audience(segment_id: str) -> bool:
    """Whether a segment id is a project segment (an audience, with `Segment Entered` events
    and member counts), not a journey's branch condition."""
    return "/" not in segment_id


def branch_segments(journeys: Iterable[JourneyDefinition]) -> list[Segment]:
    """The conditions of the journeys' `branch` steps, as segments the fold keeps current
    (ids hold a '/', which no project segment's can, and appear in no `Segment Entered`)."""
    return [
        Segment(
            id=step.segment_id,
            name=step.segment_id,
            condition=step.condition,
            version=condition_version(step.condition),
        )
        for journey in journeys
        for step in walk_steps(journey.steps)
        if isinstance(step, BranchStep)
    ]


def walk_steps(steps: list[Step]) -> Iterator[Step]:
    """Every step, depth first, branches included."""
    for step in steps:
        yield step
        for branch in step_branches(step):
            yield from walk_steps(branch)


def step_branches(step: Step) -> list[list[Step]]:
    """The step lists a step leads into, numbered as in an instance's position."""
    match step:
        case WaitForStep():
            return [step.came, step.timed_out]
        case SplitStep():
            return [arm.steps for arm in step.arms]
        case BranchStep():
            return [step.then, step.otherwise]
        case _:
            return []


def load_journeys(
    journeys_dir: Path,
    template_names: Collection[str] | None = None,
    segment_names: Collection[str] | None = None,
    topic_names: Collection[str] | None = None,
) -> list[JourneyDefinition]:
    """Every `*.yaml` journey in `journeys_dir`, sorted by id; none when the folder is absent.

    With `template_names`, a `send` of any other template is an error; with `segment_names`,
    so is a rule or condition on any other segment; with `topic_names`, any other topic.
    Raises `ProjectError`.
    """
    if not journeys_dir.exists():
        return []
    if not journeys_dir.is_dir():
        raise ProjectError(
            journeys_dir, "must be a folder holding one <journey id>.yaml per journey"
        )
    files = sorted([*journeys_dir.glob("*.yaml"), *journeys_dir.glob("*.yml")])
    journeys: dict[str, JourneyDefinition] = {}
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ProjectError(path, f"not UTF-8 text ({error.reason}): save it as UTF-8") from None
        journey = parse_journey(text, path, template_names, segment_names, topic_names)
        if journey.id in journeys:
            raise ProjectError(path, f"a second file for journey {journey.id!r}: keep one")
        journeys[journey.id] = journey
    return [journeys[key] for key in sorted(journeys)]


def parse_journey(
    text: str,
    path: Path,
    template_names: Collection[str] | None = None,
    segment_names: Collection[str] | None = None,
    topic_names: Collection[str] | None = None,
) -> JourneyDefinition:
    """The journey in `text`; `path` names it (id = its stem) in errors. Raises `ProjectError`."""
    journey_id = path.stem
    if not _ID.fullmatch(journey_id):
        raise ProjectError(
            path,
            f"journey id {journey_id!r} (the file name) may hold only letters, digits, "
            "'_', '-' and '.': rename the file",
        )
    root, reader = compose(text, path)
    if root is None:
        raise ProjectError(
            path, f"the file is empty: a journey needs a trigger and\n{_STEPS_EXAMPLE}"
        )
    parser = _JourneyParser(reader, template_names, segment_names, topic_names)
    return parser.journey(root, journey_id, _version(text))


def _version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class _JourneyParser:
    def __init__(
        self,
        reader: NodeReader,
        template_names: Collection[str] | None,
        segment_names: Collection[str] | None,
        topic_names: Collection[str] | None,
    ) -> None:
        self.reader = reader
        self.template_names = template_names
        self.segment_names = segment_names
        self.topic_names = topic_names
        self._step_parsers: dict[str, Callable[[dict[str, Node], str, str], Step]] = {
            "send": self._send,
            "wait": self._wait,
            "wait_until": self._wait_until,
            "wait_for": self._wait_for,
            "split": self._split,
            "branch": self._branch_step,
        }
        self._journey_id = ""
        self._version = ""
        self._topic: str | None = None
        self._exit_on: list[GoalRule] = []
        self._step_ids: set[str] = set()

    def journey(self, root: Node, journey_id: str, version: str) -> JourneyDefinition:
        r = self.reader
        self._journey_id, self._version = journey_id, version
        entries = r.mapping(root, "a journey", _TOP_KEYS)
        topic_node = r.optional(entries, "topic")
        self._topic = self._topic_name(topic_node) if topic_node else None
        name_node = r.optional(entries, "name")
        trigger_node = r.required(
            entries,
            "trigger",
            root,
            f"say which event starts it, e.g.\n{_TRIGGER_EXAMPLE}",
        )
        entry_node = r.optional(entries, "entry")
        class_node = r.optional(entries, "message_class")
        message_class = (
            self._message_class(class_node) if class_node else MessageClass.MARKETING.value
        )
        exit_node = r.optional(entries, "exit_on")
        steps_node = r.required(entries, "steps", root, f"say what it does, e.g.\n{_STEPS_EXAMPLE}")
        return JourneyDefinition(
            id=journey_id,
            name=r.text(name_node, "name") if name_node else journey_id,
            trigger=self._trigger(trigger_node),
            entry=self._entry(entry_node) if entry_node else EntryRule(kind="once"),
            message_class=message_class,
            exit_on=self._goals(exit_node),
            steps=self._steps(steps_node, message_class),
            version=version,
        )

    def _rule(
        self, node: Node, what: str, example: str, keys: Collection[str] = _RULE_KEYS
    ) -> tuple[str, tuple[Filter, ...]]:
        r = self.reader
        entries = r.mapping(node, what, keys, example)
        on_segment = [key for key in _SEGMENT_RULES if key in entries]
        if on_segment:
            return self._segment_rule(entries, node, on_segment)
        event = r.text(
            r.required(entries, "event", node, "name the track event, e.g. event: Signed Up"),
            "event",
        )
        where_node = r.optional(entries, "where")
        return event, self._where(where_node) if where_node else ()

    def _goals(self, node: Node | None) -> list[GoalRule]:
        """Read before the steps, which are checked against them."""
        r = self.reader
        self._exit_on = [
            GoalRule(*self._rule(item, "an exit_on goal", _GOAL_EXAMPLE))
            for item in (r.sequence(node, "exit_on", _GOAL_EXAMPLE) if node else [])
        ]
        return self._exit_on

    def _trigger(self, node: Node) -> Trigger:
        r = self.reader
        event, where = self._rule(node, "trigger", _TRIGGER_EXAMPLE, _TRIGGER_KEYS)
        fan_out_node = r.optional(r.mapping(node, "trigger", _TRIGGER_KEYS), "fan_out")
        if fan_out_node is None:
            return Trigger(event, where)
        if event in _SEGMENT_RULES.values():
            r.fail(fan_out_node, "a fan-out starts on an event about an object, not a segment")
        return Trigger(event, where, fan_out=self._fan_out(fan_out_node))

    def _fan_out(self, node: Node) -> FanOut:
        r = self.reader
        spec = r.mapping(node, "fan_out", _FAN_OUT_KEYS, _FAN_OUT_EXAMPLE)

        def need(key: str, fix: str) -> Node:
            return r.required(spec, key, node, f"{fix}, e.g.\n{_FAN_OUT_EXAMPLE}")

        performed_node = need("performed", "say which events show interest")
        if isinstance(performed_node, SequenceNode):
            performed = tuple(
                r.text(item, "performed (an event name)") for item in performed_node.value
            )
        else:
            performed = (r.text(performed_node, "performed (an event name)"),)
        if not performed:
            r.fail(performed_node, "name at least one event that shows interest")
        within_node = need("within", "say how recent the interest must be")
        within = self._duration(within_node, r.value(within_node))
        if within <= 0:
            r.fail(within_node, "within must be longer than 0s")
        return FanOut(
            catalog=r.text(need("catalog", "name the catalog the object is in"), "catalog"),
            performed=performed,
            key=r.text(need("key", "name the property that holds the object's id"), "key"),
            within=within,
        )

    def _segment_rule(
        self, entries: dict[str, Node], node: Node, keys: list[str]
    ) -> tuple[str, tuple[Filter, ...]]:
        r = self.reader
        if len(keys) > 1 or "event" in entries or "where" in entries:
            r.fail(
                node,
                "a rule is on one event or one segment change: write either event (with "
                "where) or segment_entered or segment_exited, e.g. {segment_entered: vip}",
            )
        segment_node = entries[keys[0]]
        segment = r.text(segment_node, f"{keys[0]} (a segment id)")
        names = self.segment_names
        if names is not None and segment not in names:
            r.fail(segment_node, f"no segment named {segment!r}: {suggest(segment, names)}")
        return _SEGMENT_RULES[keys[0]], (compile_filter("segment", "eq", segment),)

    def _where(self, node: Node) -> tuple[Filter, ...]:
        r = self.reader
        filters: list[Filter] = []
        for key_node, value_node in r.pairs(node, "where"):
            if isinstance(value_node, MappingNode):
                ops = r.pairs(value_node, f"the filter on {key_node.value!r}")
                if not ops:
                    r.fail(value_node, f"no condition on {key_node.value!r}: e.g. {{gte: 10}}")
                for op_node, operand_node in ops:
                    op = op_node.value
                    if op not in FILTER_OPS:
                        r.fail(op_node, f"unknown filter op {op!r}: {suggest(op, FILTER_OPS)}")
                    filters.append(self._filter(key_node, op, operand_node))
            elif isinstance(value_node, SequenceNode):
                r.fail(
                    value_node,
                    f"a list under {key_node.value!r}: write {{in: [...]}} to match any of several "
                    "values, or {eq: [...]} to match the list itself",
                )
            else:
                filters.append(self._filter(key_node, "eq", value_node))
        return tuple(filters)

    def _filter(self, key_node: Node, op: str, operand_node: Node) -> Filter:
        try:
            return compile_filter(key_node.value, op, self.reader.value(operand_node))
        except ValueError as error:
            self.reader.fail(operand_node, str(error))

    def _entry(self, node: Node) -> EntryRule:
        r = self.reader
        kind, _, rest = r.text(node, "entry").strip().partition(" ")
        rest = rest.strip()
        if kind not in _ENTRY_KINDS:
            r.fail(node, f"unknown entry rule {kind!r}: {suggest(kind, _ENTRY_KINDS)}")
        if kind != "once_per":
            if rest:
                r.fail(
                    node,
                    f"{kind!r} takes no period: to allow one entry per period write "
                    "'once_per <duration>', e.g. 'once_per 1d'",
                )
            return EntryRule(kind=kind)
        if not rest:
            r.fail(node, "once_per needs a period, e.g. 'once_per 1d'")
        period = self._duration(node, rest)
        if period <= 0:
            r.fail(node, "the once_per period must be longer than 0s, or write 'always'")
        return EntryRule(kind=kind, period=period)

    def _duration(self, node: Node, value: str | int | float) -> float:
        try:
            return parse_duration(value)
        except ValueError as error:
            self.reader.fail(node, str(error))

    def _message_class(self, node: Node) -> str:
        value = self.reader.text(node, "message_class")
        if value not in _MESSAGE_CLASSES:
            self.reader.fail(
                node, f"unknown message_class {value!r}: {suggest(value, _MESSAGE_CLASSES)}"
            )
        return value

    def _steps(
        self, node: Node, message_class: str, prefix: str = "s", *, branch: bool = False
    ) -> list[Step]:
        """A list of steps; ids are unique across the whole journey (they key its sends), and
        a step without one is named by its place (`s0`, `s2-timeout-0`). A branch may be
        empty (a control group, or nothing to do when the event came)."""
        r = self.reader
        items = r.sequence(node, "steps", _STEPS_EXAMPLE)
        if not items and not branch:
            r.fail(node, f"a journey needs at least one step, e.g.\n{_STEPS_EXAMPLE}")
        steps: list[Step] = []
        for index, item in enumerate(items):
            entries = r.mapping(item, "a step", _ALL_STEP_KEYS)
            kinds = [key for key in entries if key in self._step_parsers]
            if len(kinds) != 1:
                found = " and ".join(kinds) or "none"
                r.fail(
                    item,
                    f"a step does exactly one of {', '.join(self._step_parsers)}; this has {found}",
                )
            kind = kinds[0]
            r.mapping(item, f"a {kind} step", _STEP_KEYS[kind])
            id_node = r.optional(entries, "id")
            step_id = r.text(id_node, "id") if id_node else f"{prefix}{index}"
            if not _ID.fullmatch(step_id):
                r.fail(
                    id_node or item,
                    f"step id {step_id!r} may hold only letters, digits, '_', '-' and '.'",
                )
            if step_id in self._step_ids:
                r.fail(
                    id_node or item, f"step id {step_id!r} is used twice: give each step its own id"
                )
            self._step_ids.add(step_id)
            steps.append(self._step_parsers[kind](entries, step_id, message_class))
        return steps

    def _wait_for(self, entries: dict[str, Node], step_id: str, message_class: str) -> WaitForStep:
        r = self.reader
        node = entries["wait_for"]
        spec = r.mapping(node, "wait_for", _WAIT_FOR_KEYS, _WAIT_FOR_EXAMPLE)
        timeout_node = r.required(
            spec, "timeout", node, "say how long to wait for the event, e.g. timeout: 1d"
        )
        timeout = self._duration(timeout_node, r.value(timeout_node))
        if timeout <= 0:
            r.fail(timeout_node, "the timeout must be longer than 0s")
        event, where = self._rule(node, "wait_for", _WAIT_FOR_EXAMPLE, _WAIT_FOR_KEYS)
        then_node, timeout_branch = r.optional(entries, "then"), r.optional(entries, "on_timeout")
        if then_node is not None:
            self._check_reachable(then_node, EventRule(event, where))
        return WaitForStep(
            id=step_id,
            rule=EventRule(event, where),
            timeout=timeout,
            came=self._branch(then_node, message_class, f"{step_id}-then-"),
            timed_out=self._branch(timeout_branch, message_class, f"{step_id}-timeout-"),
        )

    def _check_reachable(self, then_node: Node, awaited: EventRule) -> None:
        """A goal that matches every awaited event ends the journey before `then` can run."""
        for goal in self._exit_on:
            if goal.event == awaited.event and set(goal.where) <= set(awaited.where):
                self.reader.fail(
                    then_node,
                    f"this `then` never runs: the exit_on goal {goal.event!r} ends the journey "
                    "first whenever the awaited event comes. Remove it from exit_on, or move "
                    "these steps elsewhere",
                )

    def _wait_until(
        self, entries: dict[str, Node], step_id: str, message_class: str
    ) -> WaitUntilStep:
        r = self.reader
        node = entries["wait_until"]
        spec = r.mapping(node, "wait_until", _WAIT_UNTIL_KEYS, _WAIT_UNTIL_EXAMPLE)
        time_node, trait_node = r.optional(spec, "time"), r.optional(spec, "trait")
        offset_node = r.optional(spec, "offset")
        if (time_node is None) == (trait_node is None):
            r.fail(node, f"wait_until takes either a time or a trait, e.g.\n{_WAIT_UNTIL_EXAMPLE}")
        if time_node is not None:
            if offset_node is not None:
                r.fail(offset_node, "an offset goes with a trait; for a time, write the time")
            # The text as written: YAML 1.1 would read an unquoted 9:30 as the number 570.
            written = time_node.value if isinstance(time_node, ScalarNode) else ""
            match = _TIME_OF_DAY.fullmatch(str(written).strip())
            if match is None:
                r.fail(time_node, "a time of day is HH:MM on a 24-hour clock, e.g. '09:00'")
            return WaitUntilStep(id=step_id, time=(int(match[1]), int(match[2])))
        assert trait_node is not None
        offset = 0.0
        if offset_node is not None:
            text = str(r.value(offset_node)).strip()
            sign = -1.0 if text.startswith("-") else 1.0
            offset = sign * self._duration(offset_node, text.lstrip("+-"))
        return WaitUntilStep(id=step_id, trait=r.text(trait_node, "trait"), offset=offset)

    def _branch(self, node: Node | None, message_class: str, prefix: str) -> list[Step]:
        return self._steps(node, message_class, prefix, branch=True) if node else []

    def _split(self, entries: dict[str, Node], step_id: str, message_class: str) -> SplitStep:
        r = self.reader
        node = entries["split"]
        items = r.sequence(node, "split", _SPLIT_EXAMPLE)
        if len(items) < 2:
            r.fail(node, f"a split needs at least two arms, e.g.\n{_SPLIT_EXAMPLE}")
        arms: list[SplitArm] = []
        for index, item in enumerate(items):
            spec = r.mapping(item, "a split arm", _ARM_KEYS, _SPLIT_EXAMPLE)
            name_node = r.optional(spec, "arm")
            name = r.text(name_node, "arm") if name_node else chr(ord("a") + index)
            if not _ID.fullmatch(name):
                r.fail(name_node or item, f"arm name {name!r}: letters, digits, '_', '-', '.'")
            if any(arm.name == name for arm in arms):
                r.fail(name_node or item, f"arm {name!r} is named twice: name each arm once")
            weight_node = r.required(spec, "weight", item, "give each arm a weight, e.g. 50")
            weight = r.value(weight_node)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
                r.fail(weight_node, f"a weight is a number above 0, not {weight!r}")
            arms.append(
                SplitArm(
                    name=name,
                    weight=float(weight),
                    steps=self._branch(
                        r.optional(spec, "steps"), message_class, f"{step_id}-{name}-"
                    ),
                )
            )
        return SplitStep(id=step_id, salt=f"{self._journey_id}:{step_id}", arms=arms)

    def _branch_step(
        self, entries: dict[str, Node], step_id: str, message_class: str
    ) -> BranchStep:
        r = self.reader
        node = entries["branch"]
        if is_null(node):
            r.fail(node, f"say on what the branch decides, e.g.\n{_BRANCH_EXAMPLE}")
        condition = condition_at(r, node)
        names = self.segment_names
        for segment in sorted(referenced(condition)):
            if names is not None and segment not in names:
                r.fail(node, f"no segment named {segment!r}: {suggest(segment, names)}")
        then_node, else_node = r.optional(entries, "then"), r.optional(entries, "else")
        return BranchStep(
            id=step_id,
            segment_id=branch_segment_id(self._journey_id, self._version, step_id),
            condition=condition,
            then=self._branch(then_node, message_class, f"{step_id}-then-"),
            otherwise=self._branch(else_node, message_class, f"{step_id}-else-"),
        )

    def _send(self, entries: dict[str, Node], step_id: str, message_class: str) -> SendStep:
        r = self.reader
        template_node = entries["send"]
        template = r.text(template_node, "send (a template name)")
        names = self.template_names
        if names is not None and template not in names:
            r.fail(template_node, f"no template named {template!r}: {suggest(template, names)}")
        class_node = r.optional(entries, "message_class")
        if class_node:
            message_class = self._message_class(class_node)
        topic_node = r.optional(entries, "topic")
        topic = self._topic_name(topic_node) if topic_node else self._topic
        return SendStep(id=step_id, template=template, message_class=message_class, topic=topic)

    def _topic_name(self, node: Node) -> str:
        topic = self.reader.text(node, "topic")
        if not _ID.fullmatch(topic):
            self.reader.fail(node, f"topic {topic!r} may hold only letters, digits, '_', '-', '.'")
        if self.topic_names is not None and topic not in self.topic_names:
            self.reader.fail(node, unknown_topic(topic, self.topic_names))
        return topic

    def _wait(self, entries: dict[str, Node], step_id: str, message_class: str) -> WaitStep:
        node = entries["wait"]
        return WaitStep(id=step_id, seconds=self._duration(node, self.reader.value(node)))
