"""Property filters: `where:` clauses compiled once at load, matched per event.

A filter compares the value at a dotted path in an event's properties (`product.sku`) with a
value from the project file. Matching never raises: a comparison between values of different
kinds (a number and a string, a list and a number) is simply false, because event properties
come from outside and may hold anything. A missing property equals nothing (so `ne` holds for
it) and orders with nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from mailpulse.types import Event, EventType

_MISSING = object()


class Filter(msgspec.Struct, frozen=True):
    """One condition: `op` applied to the property at `path` and `value`."""

    path: tuple[str, ...]
    op: str
    value: Any


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparable(actual: Any, expected: Any) -> bool:
    # Order only numbers with numbers and text with text (ISO dates compare as text).
    if isinstance(actual, str) and isinstance(expected, str):
        return True
    return _is_number(actual) and _is_number(expected)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return expected in actual
    return False


def _exists(actual: Any, expected: bool) -> bool:
    # Segment libraries send null for an unset property: null counts as absent.
    present = actual is not _MISSING and actual is not None
    return present == expected


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda actual, expected: actual == expected,
    "ne": lambda actual, expected: actual != expected,
    "gt": lambda actual, expected: _comparable(actual, expected) and actual > expected,
    "gte": lambda actual, expected: _comparable(actual, expected) and actual >= expected,
    "lt": lambda actual, expected: _comparable(actual, expected) and actual < expected,
    "lte": lambda actual, expected: _comparable(actual, expected) and actual <= expected,
    "in": lambda actual, expected: actual is not _MISSING and actual in expected,
    "contains": _contains,
    "exists": _exists,
}

FILTER_OPS: tuple[str, ...] = tuple(_OPS)


def compile_filter(path: str, op: str, value: Any) -> Filter:
    """A `Filter` for `path` (dotted) and `op`; raises ValueError saying how to fix bad input."""
    parts = tuple(path.split("."))
    if not all(parts):
        raise ValueError(f"bad property path {path!r}: write names joined by '.', e.g. product.sku")
    if op not in _OPS:
        raise ValueError(f"unknown filter op {op!r}: expected one of {', '.join(FILTER_OPS)}")
    if op in ("gt", "gte", "lt", "lte") and not (_is_number(value) or isinstance(value, str)):
        raise ValueError(f"{op} compares with a number or a text, not {value!r}")
    if op == "in" and not isinstance(value, list):
        raise ValueError(f"in takes a list of values, e.g. {{in: [USD, EUR]}}, not {value!r}")
    if op == "exists" and not isinstance(value, bool):
        raise ValueError(f"exists takes true or false, not {value!r}")
    return Filter(path=parts, op=op, value=value)


def _lookup(properties: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = properties
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return _MISSING
        value = value[name]
    return value


def matches(where: Iterable[Filter], properties: Mapping[str, Any]) -> bool:
    """True when every filter holds for `properties` (no filters: always true)."""
    return all(_OPS[f.op](_lookup(properties, f.path), f.value) for f in where)


class EventMatch(msgspec.Struct, frozen=True):
    """`track` events named `event` whose properties match every filter of `where`."""

    event: str
    where: tuple[Filter, ...] = ()

    def matches(self, event: Event) -> bool:
        return (
            event.type == EventType.TRACK
            and event.event == self.event
            and matches(self.where, event.properties)
        )
