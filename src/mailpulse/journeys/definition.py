"""Journey definitions: `journeys/*.yaml`, one journey per file, its id the file stem.

Everything a person can get wrong is caught here, at load, with the file, the line and the fix;
the engine then trusts the definition.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection
from pathlib import Path

import msgspec
from yaml.nodes import MappingNode, Node, SequenceNode

from mailpulse.errors import ProjectError
from mailpulse.journeys.filters import FILTER_OPS, Filter, compile_filter, matches
from mailpulse.journeys.yamlnodes import NodeReader, compose, suggest
from mailpulse.types import Event, EventType, MessageClass
from mailpulse.units import parse_duration

# Ids end up inside instance ids and intent keys, joined by ':'.
_ID = re.compile(r"[A-Za-z0-9_.-]+")
_TOP_KEYS = ("name", "trigger", "entry", "message_class", "exit_on", "steps")
_RULE_KEYS = ("event", "where")
_ENTRY_KINDS = ("once", "once_per", "always")
_MESSAGE_CLASSES = tuple(c.value for c in MessageClass)
_STEP_KEYS = {"send": ("send", "id", "message_class"), "wait": ("wait", "id")}
_ALL_STEP_KEYS = sorted({key for keys in _STEP_KEYS.values() for key in keys})
_STEPS_EXAMPLE = "steps:\n  - send: welcome"
_TRIGGER_EXAMPLE = "trigger:\n  event: Signed Up"
_GOAL_EXAMPLE = "exit_on:\n  - event: Order Completed"


class EventRule(msgspec.Struct, frozen=True):
    """A `track` event by name, with property filters that must all hold."""

    event: str
    where: tuple[Filter, ...] = ()

    def matches(self, event: Event) -> bool:
        return (
            event.type == EventType.TRACK
            and event.event == self.event
            and matches(self.where, event.properties)
        )


class Trigger(EventRule, frozen=True):
    """The event that starts a journey."""


class GoalRule(EventRule, frozen=True):
    """An event that ends a running journey at once."""


class EntryRule(msgspec.Struct, frozen=True):
    """When a contact may enter: `once` ever, `once_per` a period, or `always` (one at a time)."""

    kind: str
    period: float = 0.0


class SendStep(msgspec.Struct, frozen=True, tag="send"):
    id: str
    template: str
    message_class: str


class WaitStep(msgspec.Struct, frozen=True, tag="wait"):
    id: str
    seconds: float


Step = SendStep | WaitStep


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


def load_journeys(
    journeys_dir: Path, template_names: Collection[str] | None = None
) -> list[JourneyDefinition]:
    """Every `*.yaml` journey in `journeys_dir`, sorted by id; none when the folder is absent.

    With `template_names`, a `send` of any other template is an error. Raises `ProjectError`.
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
        journey = parse_journey(text, path, template_names)
        if journey.id in journeys:
            raise ProjectError(path, f"a second file for journey {journey.id!r}: keep one")
        journeys[journey.id] = journey
    return [journeys[key] for key in sorted(journeys)]


def parse_journey(
    text: str, path: Path, template_names: Collection[str] | None = None
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
    return _JourneyParser(reader, template_names).journey(root, journey_id, _version(text))


def _version(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class _JourneyParser:
    def __init__(self, reader: NodeReader, template_names: Collection[str] | None) -> None:
        self.reader = reader
        self.template_names = template_names
        self._step_parsers: dict[str, Callable[[dict[str, Node], str, str], Step]] = {
            "send": self._send,
            "wait": self._wait,
        }

    def journey(self, root: Node, journey_id: str, version: str) -> JourneyDefinition:
        r = self.reader
        entries = r.mapping(root, "a journey", _TOP_KEYS)
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
            trigger=Trigger(*self._rule(trigger_node, "trigger", _TRIGGER_EXAMPLE)),
            entry=self._entry(entry_node) if entry_node else EntryRule(kind="once"),
            message_class=message_class,
            exit_on=[
                GoalRule(*self._rule(node, "an exit_on goal", _GOAL_EXAMPLE))
                for node in (r.sequence(exit_node, "exit_on", _GOAL_EXAMPLE) if exit_node else [])
            ],
            steps=self._steps(steps_node, message_class),
            version=version,
        )

    def _rule(self, node: Node, what: str, example: str) -> tuple[str, tuple[Filter, ...]]:
        r = self.reader
        entries = r.mapping(node, what, _RULE_KEYS, example)
        event = r.text(
            r.required(entries, "event", node, "name the track event, e.g. event: Signed Up"),
            "event",
        )
        where_node = r.optional(entries, "where")
        return event, self._where(where_node) if where_node else ()

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

    def _steps(self, node: Node, message_class: str) -> list[Step]:
        r = self.reader
        items = r.sequence(node, "steps", _STEPS_EXAMPLE)
        if not items:
            r.fail(node, f"a journey needs at least one step, e.g.\n{_STEPS_EXAMPLE}")
        steps: list[Step] = []
        ids: set[str] = set()
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
            step_id = r.text(id_node, "id") if id_node else f"s{index}"
            if not _ID.fullmatch(step_id):
                r.fail(
                    id_node or item,
                    f"step id {step_id!r} may hold only letters, digits, '_', '-' and '.'",
                )
            if step_id in ids:
                r.fail(
                    id_node or item, f"step id {step_id!r} is used twice: give each step its own id"
                )
            ids.add(step_id)
            steps.append(self._step_parsers[kind](entries, step_id, message_class))
        return steps

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
        return SendStep(id=step_id, template=template, message_class=message_class)

    def _wait(self, entries: dict[str, Node], step_id: str, message_class: str) -> WaitStep:
        node = entries["wait"]
        return WaitStep(id=step_id, seconds=self._duration(node, self.reader.value(node)))
