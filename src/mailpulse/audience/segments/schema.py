"""The segment schema: `segments/<id>.yaml` files and admin API data, read by the same rules.

```yaml
name: Engaged shoppers            # optional, defaults to the id (the file stem)
description: Bought lately and still reading us
conditions:
  all:
    - {trait: plan, in: [pro, team]}
    - {trait: signed_up_at, before: 30d}        # a date (ISO-8601 text or epoch seconds)
    - {seen: last, within: 60d}                 # or `seen: first`
    - {performed: Product Added, where: {price: {gte: 10}}, at_least: 2, within: 1h}
    - {not_performed: Order Completed, within: 30d}
    - {email: opened, within: 30d, template: weekly}   # opened, clicked or received
    - {subscribed: newsletter}
    - {segment: vip}                            # a member of another segment
    - any: [...]
    - not: {...}
```

A condition is exactly one of these kinds. Trait conditions take the filter ops of `where:`
(eq, ne, gt, gte, lt, lte, in, contains, exists) and `before` / `within` durations, all of which
must hold; behaviour conditions count `at_least` (default 1) and `at_most` times, in the last
`within` (default: all history). Everything a person can get wrong fails here, at load, with
the place and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from yaml.nodes import Node

from mailpulse.audience.segments.conditions import (
    Aggregate,
    AllOf,
    AnyOf,
    BadReference,
    Condition,
    InSegment,
    Not,
    Performed,
    RelativeDate,
    Seen,
    Segment,
    Subscribed,
    TraitCondition,
    condition_version,
    evaluation_order,
)
from mailpulse.audience.segments.located import DataLocated, Located, YamlLocated
from mailpulse.errors import ProjectError
from mailpulse.events.filters import FILTER_OPS, Filter, compile_filter
from mailpulse.yamlnodes import NodeReader, compose, suggest

# Ids end up in events (`Segment Entered`) and state keys.
_ID = re.compile(r"[A-Za-z0-9_.-]+")
_TOP_KEYS = ("name", "description", "conditions")
# The lifecycle events (see mailpulse.runtime.lifecycle) each engagement stands for.
_EMAIL_EVENTS = {"opened": "Email Opened", "clicked": "Email Clicked", "received": "Email Sent"}
# Opens and clicks count as a person's unless flagged a machine's (mailpulse.feedback.machines:
# Apple's privacy proxy, link scanners); those without the flag (older ones, an ESP's) count.
_BY_A_PERSON = compile_filter("machine", "ne", True)
_DATE_KEYS = ("before", "within")
_COUNT_KEYS = ("at_least", "at_most", "within")
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "trait": ("trait", *FILTER_OPS, *_DATE_KEYS),
    "seen": ("seen", *_DATE_KEYS),
    "performed": ("performed", "where", *_COUNT_KEYS),
    "not_performed": ("not_performed", "where", "within"),
    "email": ("email", "template", "journey", *_COUNT_KEYS),
    "subscribed": ("subscribed",),
    "segment": ("segment",),
    "all": ("all",),
    "any": ("any",),
    "not": ("not",),
}
_ALL_KEYS = sorted({key for keys in _KIND_KEYS.values() for key in keys})
_EXAMPLES = {
    "trait": "{trait: plan, eq: pro}",
    "seen": "{seen: last, within: 60d}",
    "performed": "{performed: Product Added, at_least: 2, within: 1h}",
    "not_performed": "{not_performed: Order Completed, within: 30d}",
    "email": "{email: opened, within: 30d}",
    "subscribed": "{subscribed: newsletter}",
    "segment": "{segment: vip}",
    "all": "{all: [{trait: plan, eq: pro}, {seen: last, within: 30d}]}",
    "any": "{any: [{trait: plan, eq: pro}, {trait: plan, eq: team}]}",
    "not": "{not: {subscribed: newsletter}}",
}
_CONDITION_EXAMPLE = _EXAMPLES["trait"]
_SEGMENT_EXAMPLE = f"conditions: {_EXAMPLES['all']}"
_WHERE_EXAMPLE = "{currency: USD, price: {gte: 10}}"
# A count within a window keeps that many timestamps per contact, so it is bounded.
_MAX_WINDOWED_COUNT = 1000


def parse_segment(text: str, path: Path) -> Segment:
    """The segment in `text`; `path` names it (id = its stem) in errors. Raises `ProjectError`."""
    segment_id = path.stem
    if not _ID.fullmatch(segment_id):
        raise ProjectError(path, f"{_bad_id(segment_id)}: rename the file")
    root, reader = compose(text, path)
    if root is None:
        raise ProjectError(
            path, f"the file is empty: a segment needs conditions, e.g. {_SEGMENT_EXAMPLE}"
        )
    return _segment(segment_id, YamlLocated(reader, root))


def segment_from_data(segment_id: str, data: Any) -> Segment:
    """The segment in `data` (decoded JSON from the admin API). Raises `DefinitionError`, a
    `ProjectError` whose `pointer` is a JSON Pointer to the bad value."""
    located = DataLocated(data, f"segment {segment_id}")
    if not _ID.fullmatch(segment_id):
        located.fail(_bad_id(segment_id))
    return _segment(segment_id, located)


def condition_at(reader: NodeReader, node: Node) -> Condition:
    """A condition written inside another YAML file (a journey's `branch`), read by the same
    rules as a segment's; errors name that file and line."""
    return _condition(YamlLocated(reader, node))


def load_segments(segments_dir: Path) -> list[Segment]:
    """Every `*.yaml` segment in `segments_dir`, sorted by id; none when the folder is absent."""
    if not segments_dir.exists():
        return []
    if not segments_dir.is_dir():
        raise ProjectError(segments_dir, "must be a folder holding one <segment id>.yaml each")
    segments: dict[str, Segment] = {}
    sources: dict[str, tuple[Path, str]] = {}
    for path in sorted([*segments_dir.glob("*.yaml"), *segments_dir.glob("*.yml")]):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ProjectError(path, f"not UTF-8 text ({error.reason}): save it as UTF-8") from None
        segment = parse_segment(text, path)
        if segment.id in segments:
            raise ProjectError(path, f"a second file for segment {segment.id!r}: keep one")
        segments[segment.id] = segment
        sources[segment.id] = (path, text)
    try:
        evaluation_order(segments)
    except BadReference as error:
        path, text = sources[error.segment]
        raise ProjectError(path, str(error), _line_referring(text, error.target)) from None
    return [segments[key] for key in sorted(segments)]


def _line_referring(text: str, target: str) -> int | None:
    """The line of the `segment:` condition naming `target`."""
    pattern = re.compile(rf"\bsegment\s*:\s*['\"]?{re.escape(target)}['\"]?\s*[,}}\n]")
    found = pattern.search(text + "\n")
    return None if found is None else text.count("\n", 0, found.start()) + 1


def _bad_id(segment_id: str) -> str:
    return f"segment id {segment_id!r} may hold only letters, digits, '_', '-' and '.'"


def _segment(segment_id: str, at: Located) -> Segment:
    entries = at.mapping("a segment", _TOP_KEYS, _SEGMENT_EXAMPLE)
    conditions_at = _optional(entries, "conditions")
    if conditions_at is None:
        at.fail(f"missing `conditions`: say who is in the segment, e.g. {_SEGMENT_EXAMPLE}")
    name_at = _optional(entries, "name")
    description_at = _optional(entries, "description")
    condition = _condition(conditions_at)
    return Segment(
        id=segment_id,
        name=name_at.text("name") if name_at else segment_id,
        description=description_at.text("description") if description_at else "",
        condition=condition,
        version=condition_version(condition),
    )


def _optional(entries: Mapping[str, Located], key: str) -> Located | None:
    """The value of `key`, or None when it is absent or left empty."""
    at = entries.get(key)
    return None if at is None or at.is_null else at


def _condition(at: Located) -> Condition:
    """The condition at `at`, of exactly one kind, each key checked against that kind."""
    pairs = at.pairs("a condition", _CONDITION_EXAMPLE)
    for key, key_at, _ in pairs:
        if key not in _ALL_KEYS:
            key_at.fail(f"unknown key {key!r} in a condition: {suggest(key, _ALL_KEYS)}")
    kinds = [key for key, _, _ in pairs if key in _KIND_KEYS]
    if len(kinds) != 1:
        found = " and ".join(kinds) or "none"
        at.fail(
            f"a condition is exactly one of {', '.join(_KIND_KEYS)}; this has {found}, "
            f"e.g. {_CONDITION_EXAMPLE}"
        )
    kind = kinds[0]
    for key, key_at, _ in pairs:
        if key not in _KIND_KEYS[kind]:
            key_at.fail(
                f"{key!r} does not go with {kind}: a {kind} condition takes "
                f"{', '.join(_KIND_KEYS[kind][1:])}, e.g. {_EXAMPLES[kind]}"
            )
    return _PARSERS[kind]({key: value for key, _, value in pairs}, at)


def _trait(entries: dict[str, Located], at: Located) -> Condition:
    name_at = entries["trait"]
    name = name_at.text("trait (a trait name)")
    path = tuple(name.split("."))
    if not all(path):
        name_at.fail(f"bad trait name {name!r}: write names joined by '.', e.g. address.country")
    filters = tuple(
        _filter(name, op, value_at) for op, value_at in entries.items() if op in FILTER_OPS
    )
    date = _relative_date(entries)
    if not filters and date is None:
        at.fail(
            f"say what to check about trait {name!r}, e.g. {{trait: {name}, eq: pro}} or "
            f"{{trait: {name}, before: 30d}}"
        )
    return TraitCondition(path=path, filters=filters, date=date)


def _seen(entries: dict[str, Located], at: Located) -> Condition:
    which = entries["seen"].choice("seen", ("first", "last"))
    date = _relative_date(entries)
    if date is None:
        at.fail(f"say when, e.g. {{seen: {which}, within: 60d}} or {{seen: {which}, before: 30d}}")
    return Seen(which=which, date=date)


def _relative_date(entries: dict[str, Located]) -> RelativeDate | None:
    before_at, within_at = _optional(entries, "before"), _optional(entries, "within")
    if before_at is None and within_at is None:
        return None
    return RelativeDate(
        # `before: 0s` means "in the past", a window of 0s holds never.
        before=before_at.duration("before", positive=False) if before_at else None,
        within=within_at.duration("within", positive=True) if within_at else None,
    )


def _performed(entries: dict[str, Located], at: Located) -> Condition:
    event = entries["performed"].text("performed (a track event name)")
    return _counted(Aggregate(event=event, where=_where_of(entries)), entries, at)


def _not_performed(entries: dict[str, Located], at: Located) -> Condition:
    event = entries["not_performed"].text("not_performed (a track event name)")
    within_at = _optional(entries, "within")
    return Performed(
        aggregate=Aggregate(event=event, where=_where_of(entries)),
        within=within_at.duration("within", positive=True) if within_at else None,
        at_least=0,
        at_most=0,
    )


def _email(entries: dict[str, Located], at: Located) -> Condition:
    event = _EMAIL_EVENTS[entries["email"].choice("email", _EMAIL_EVENTS)]
    where = tuple(
        compile_filter(key, "eq", value_at.text(key))
        for key in ("template", "journey")
        if (value_at := _optional(entries, key)) is not None
    )
    if event != "Email Sent":
        where += (_BY_A_PERSON,)
    return _counted(Aggregate(event=event, where=where), entries, at)


def _counted(aggregate: Aggregate, entries: dict[str, Located], at: Located) -> Performed:
    within_at = _optional(entries, "within")
    least_at, most_at = _optional(entries, "at_least"), _optional(entries, "at_most")
    at_least = least_at.count("at_least") if least_at else (1 if most_at is None else 0)
    if least_at is not None and at_least == 0 and most_at is None:
        least_at.fail(
            "at_least: 0 always holds: write at_most: 0 for 'never', or leave at_least out "
            "for 'at least once'"
        )
    at_most = None
    if most_at is not None:
        at_most = most_at.count("at_most")
        if at_least > at_most:
            most_at.fail(
                f"at_least ({at_least}) is more than at_most ({at_most}): no count is both, "
                "lower at_least or raise at_most"
            )
    condition = Performed(
        aggregate=aggregate,
        within=within_at.duration("within", positive=True) if within_at else None,
        at_least=at_least,
        at_most=at_most,
    )
    if within_at is not None and condition.enough_to_decide > _MAX_WINDOWED_COUNT:
        (most_at or least_at or at).fail(
            f"within a window, counts go up to {_MAX_WINDOWED_COUNT} (each needs a timestamp "
            "kept per contact): use a shorter window or leave `within` out"
        )
    return condition


def _where_of(entries: dict[str, Located]) -> tuple[Filter, ...]:
    where_at = _optional(entries, "where")
    return () if where_at is None else _where(where_at)


def _where(at: Located) -> tuple[Filter, ...]:
    """Property filters, written as in journeys: `{path: value}` or `{path: {op: value}}`."""
    filters: list[Filter] = []
    for path, _, value_at in at.pairs("where", _WHERE_EXAMPLE):
        value = value_at.plain()
        if isinstance(value, dict):
            ops = value_at.pairs(f"the filter on {path!r}", "{gte: 10}")
            if not ops:
                value_at.fail(f"no condition on {path!r}: e.g. {{gte: 10}}")
            for op, op_at, operand_at in ops:
                if op not in FILTER_OPS:
                    op_at.fail(f"unknown filter op {op!r}: {suggest(op, FILTER_OPS)}")
                filters.append(_filter(path, op, operand_at))
        elif isinstance(value, list):
            value_at.fail(
                f"a list under {path!r}: write {{in: [...]}} to match any of several values, "
                "or {eq: [...]} to match the list itself"
            )
        else:
            filters.append(_filter(path, "eq", value_at))
    return tuple(filters)


def _filter(path: str, op: str, at: Located) -> Filter:
    try:
        return compile_filter(path, op, at.plain())
    except ValueError as error:
        at.fail(str(error))


def _subscribed(entries: dict[str, Located], at: Located) -> Condition:
    return Subscribed(topic=entries["subscribed"].text("subscribed (a topic name)"))


def _in_segment(entries: dict[str, Located], at: Located) -> Condition:
    segment = entries["segment"].text("segment (a segment id)")
    if not _ID.fullmatch(segment):
        entries["segment"].fail(_bad_id(segment))
    return InSegment(segment=segment)


def _all(entries: dict[str, Located], at: Located) -> Condition:
    return AllOf(conditions=_children(entries["all"], "all"))


def _any(entries: dict[str, Located], at: Located) -> Condition:
    return AnyOf(conditions=_children(entries["any"], "any"))


def _children(at: Located, kind: str) -> tuple[Condition, ...]:
    items = at.items(kind, _EXAMPLES[kind])
    if not items:
        at.fail(f"`{kind}` needs at least one condition, e.g. {_EXAMPLES[kind]}")
    return tuple(_condition(item) for item in items)


def _not(entries: dict[str, Located], at: Located) -> Condition:
    return Not(condition=_condition(entries["not"]))


_PARSERS: dict[str, Callable[[dict[str, Located], Located], Condition]] = {
    "trait": _trait,
    "seen": _seen,
    "performed": _performed,
    "not_performed": _not_performed,
    "email": _email,
    "subscribed": _subscribed,
    "segment": _in_segment,
    "all": _all,
    "any": _any,
    "not": _not,
}
