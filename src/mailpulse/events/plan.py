"""The tracking plan: `events.yaml`, the properties each track event carries and their types.

```yaml
Product Viewed:
  product_id: string
  price: number
  product:                 # an object, its own properties below
    sku: string
Order Completed:
  total: number
  products: array
```

Types: string, number, integer, boolean, datetime (ISO-8601 text), array, object, any.

The plan is optional and may be partial. When a project has one, every `where` filter on a
planned event in its journeys and segments must name a planned property and compare it with a
value of its type, and a fan-out's `key` must be a property of the events it reads: a filter
on `prise`, or `price: {gte: "ten"}`, would never match, so it is refused at load with its
file, line and the fix instead of silently sending nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mailpulse.events.filters import FILTER_OPS
from mailpulse.yamlnodes import NodeReader, compose, suggest

PLAN_FILE = "events.yaml"
_TYPES = ("string", "number", "integer", "boolean", "datetime", "array", "object", "any")
_ORDERED = ("number", "integer", "datetime", "string")  # gt, gte, lt and lte compare these
# Keys of a mapping that name the track event its `where` filters.
_EVENT_KEYS = ("event", "performed", "not_performed")

PropertyTypes = Mapping[str, "str | PropertyTypes"]


class TrackingPlan:
    def __init__(self, events: Mapping[str, PropertyTypes]) -> None:
        self.events = events

    def check_file(self, path: Path, text: str) -> None:
        """Every filter and fan-out key in one journey or segment file, against the plan."""
        root, reader = compose(text, path)
        if root is None:
            return
        for node in _mappings(root):
            entries = {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}
            self._check_where(reader, entries)
            self._check_fan_out(reader, entries)

    def _check_where(self, reader: NodeReader, entries: dict[str, Node]) -> None:
        named = next((entries[k] for k in _EVENT_KEYS if k in entries), None)
        where = entries.get("where")
        if not isinstance(named, ScalarNode) or not isinstance(where, MappingNode):
            return
        properties = self.events.get(named.value)
        if properties is None:
            return  # not planned: nothing to check against
        for key_node, value_node in where.value:
            declared = _declared(reader, key_node, named.value, properties)
            if isinstance(value_node, MappingNode):
                for op_node, operand_node in value_node.value:
                    if op_node.value in FILTER_OPS:
                        _check_operand(reader, operand_node, op_node.value, key_node, declared)
            else:
                _check_operand(reader, value_node, "eq", key_node, declared)

    def _check_fan_out(self, reader: NodeReader, entries: dict[str, Node]) -> None:
        performed, key = entries.get("performed"), entries.get("key")
        if performed is None or not isinstance(key, ScalarNode):
            return
        # One event name, or a list of them, as the journey takes it.
        named = performed.value if isinstance(performed, SequenceNode) else [performed]
        for event_node in named:
            properties = self.events.get(getattr(event_node, "value", None))
            if properties is not None:
                _declared(reader, key, event_node.value, properties)


def _mappings(node: Node) -> Iterator[MappingNode]:
    if isinstance(node, MappingNode):
        yield node
        for _, value in node.value:
            yield from _mappings(value)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _mappings(item)


def _declared(reader: NodeReader, key_node: Node, event: str, properties: PropertyTypes) -> str:
    """The type of the property path `key_node` names; unknown ones fail at its line."""
    declared: str | PropertyTypes = properties
    walked: list[str] = []
    for name in str(key_node.value).split("."):
        if not isinstance(declared, Mapping):
            return "any" if declared in ("object", "any") else declared
        if name not in declared:
            where = ".".join([event, *walked]) if walked else event
            reader.fail(
                key_node,
                f"{where} has no property {name!r} in {PLAN_FILE}: "
                f"{suggest(name, list(declared))}, or add it to the plan",
            )
        declared = declared[name]
        walked.append(name)
    return "object" if isinstance(declared, Mapping) else declared


def _check_operand(reader: NodeReader, node: Node, op: str, key_node: Node, declared: str) -> None:
    if declared == "any" or op == "exists":
        return
    prop = key_node.value
    if op in ("gt", "gte", "lt", "lte") and declared not in _ORDERED:
        reader.fail(node, f"{prop} is {_a(declared)} in {PLAN_FILE}: {op} cannot compare it")
    if op == "contains":
        if declared not in ("string", "array"):
            reader.fail(
                node, f"{prop} is {_a(declared)} in {PLAN_FILE}: contains needs text or a list"
            )
        return
    values = reader.value(node)
    for value in values if op == "in" and isinstance(values, list) else [values]:
        if not _fits(value, declared):
            reader.fail(
                node,
                f"{prop} is {_a(declared)} in {PLAN_FILE}, so {value!r} never matches it: "
                f"write {_a(declared)}",
            )


def _fits(value: Any, declared: str) -> bool:
    if value is None:
        return True  # matches a property sent as null
    match declared:
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "string" | "datetime":
            return isinstance(value, str)
        case "array":
            return isinstance(value, list)
        case "object":
            return isinstance(value, dict)
    return True


def _a(declared: str) -> str:
    return f"an {declared}" if declared[0] in "aeiou" else f"a {declared}"


def load_plan(project_dir: Path) -> TrackingPlan | None:
    """The project's plan, or None when it has no `events.yaml`. Raises `ProjectError`."""
    path = project_dir / PLAN_FILE
    if not path.exists():
        return None
    root, reader = compose(path.read_text(encoding="utf-8"), path)
    if root is None:
        return TrackingPlan({})
    events: dict[str, PropertyTypes] = {}
    for event_node, properties_node in reader.pairs(root, "the tracking plan"):
        events[reader.text(event_node, "an event name")] = _properties(reader, properties_node)
    return TrackingPlan(events)


def _properties(reader: NodeReader, node: Node) -> PropertyTypes:
    if not isinstance(node, MappingNode):
        reader.fail(node, "list an event's properties as `name: type` lines, e.g. price: number")
    properties: dict[str, str | PropertyTypes] = {}
    for name_node, type_node in reader.pairs(node, "an event's properties"):
        name = reader.text(name_node, "a property name")
        if isinstance(type_node, MappingNode):
            properties[name] = _properties(reader, type_node)
            continue
        kind = reader.text(type_node, f"the type of {name}")
        if kind not in _TYPES:
            reader.fail(type_node, f"unknown type {kind!r}: {suggest(kind, _TYPES)}")
        properties[name] = kind
    return properties
