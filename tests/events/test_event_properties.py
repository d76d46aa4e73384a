"""Whatever arrives, parsing either succeeds or raises EventError; what the schema allows parses.

`from_schema` turns the published JSON Schema into a hypothesis strategy (hypothesis-jsonschema
is not a dependency). It refuses keywords it does not understand, so a constraint added to the
schema cannot be silently skipped here.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailpulse.events import EventError, decode_body, json_schema, parse_batch, parse_call
from mailpulse.events.schema import NO_NUL

CALL_TYPES = ["track", "identify", "page", "screen", "group", "alias"]
SEGMENT_FIELDS = [
    "type", "userId", "anonymousId", "messageId", "timestamp", "sentAt", "context",
    "integrations", "properties", "traits", "event", "name", "category", "groupId",
    "previousId", "writeKey", "receivedAt",
]  # fmt: skip
KNOWN_KEYWORDS = {
    "type", "properties", "required", "anyOf", "enum", "items", "minItems", "minLength",
    "maxLength", "format", "default", "title", "description", "pattern",
}  # fmt: skip
STRING_SIZE = 12
ITEMS = 4

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=STRING_SIZE),
    lambda children: (
        st.lists(children, max_size=ITEMS)
        | st.dictionaries(st.text(max_size=STRING_SIZE), children, max_size=ITEMS)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=STRING_SIZE), json_values, max_size=ITEMS)
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
rfc3339 = st.builds(
    lambda moment, zulu: moment.isoformat().replace("+00:00", "Z" if zulu else "+00:00"),
    st.datetimes(timezones=offsets),
    st.booleans(),
)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    unknown = set(schema) - KNOWN_KEYWORDS
    assert not unknown, f"from_schema does not understand {unknown}"
    if "anyOf" in schema and "type" in schema:
        # An object whose `anyOf` branches add constraints: meet one of them. Each branch's
        # property schema is narrower than the base's, so it stands for their intersection.
        base = {k: v for k, v in schema.items() if k != "anyOf"}
        return st.sampled_from(schema["anyOf"]).flatmap(
            lambda branch: from_schema(
                {
                    **base,
                    "properties": {**base["properties"], **branch["properties"]},
                    "required": [*base.get("required", []), *branch["required"]],
                }
            )
        )
    if "anyOf" in schema:
        return st.one_of([from_schema(option) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema["type"]
    if kind == "object":
        properties = schema.get("properties")
        if not properties:
            return json_objects
        required = schema.get("required", [])
        return st.fixed_dictionaries(
            {name: from_schema(properties[name]) for name in required},
            optional={n: from_schema(s) for n, s in properties.items() if n not in required},
        )
    if kind == "array":
        least = schema.get("minItems", 0)
        return st.lists(from_schema(schema["items"]), min_size=least, max_size=least + ITEMS)
    if kind == "string":
        if schema.get("format") == "date-time":
            return rfc3339
        least = schema.get("minLength", 0)
        # The one pattern the schema uses keeps NUL characters out of ids.
        assert schema.get("pattern", NO_NUL) == NO_NUL, schema["pattern"]
        excluded = "\x00" if "pattern" in schema else ""
        return st.text(
            st.characters(exclude_categories=("Cs",), exclude_characters=excluded),
            min_size=least,
            max_size=min(schema["maxLength"], least + STRING_SIZE),
        )
    if kind == "integer":
        return st.integers(-(2**63), 2**64 - 1)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "null":
        return st.none()
    raise AssertionError(f"from_schema does not understand type {kind!r}")


def parse(call_type: str, body: bytes) -> None:
    with contextlib.suppress(EventError):
        if call_type == "batch":
            parse_batch(body, received_at=0.0)
        else:
            parse_call(call_type, body, received_at=0.0)


@pytest.mark.parametrize("call_type", CALL_TYPES)
@given(st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_bodies_the_schema_allows_parse(call_type: str, data: st.DataObject) -> None:
    value = data.draw(from_schema(json_schema(call_type)))
    (event,) = parse_call(call_type, json.dumps(value).encode(), received_at=0.0).events
    assert event.type == call_type
    assert event.contact_key in (event.user_id, event.anonymous_id)
    assert event.contact_key
    if value.get("messageId"):
        assert event.message_id == value["messageId"]


@given(from_schema(json_schema("batch")))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_batches_the_schema_allows_parse(value: dict[str, Any]) -> None:
    events = parse_batch(json.dumps(value).encode(), received_at=0.0).events
    assert [e.type for e in events] == [item["type"] for item in value["batch"]]


def test_schema_has_no_references_and_requires_an_identity() -> None:
    for call_type in [*CALL_TYPES, "batch"]:
        assert "$ref" not in json.dumps(json_schema(call_type))
    assert "userId" in json_schema("alias")["required"]
    assert json_schema("track")["required"] == ["event"]
    assert [branch["required"] for branch in json_schema("identify")["anyOf"]] == [
        ["userId"],
        ["anonymousId"],
    ]
    items = json_schema("batch")["properties"]["batch"]["items"]["anyOf"]
    assert sorted(item["properties"]["type"]["enum"][0] for item in items) == sorted(CALL_TYPES)


def test_schema_is_a_fresh_copy() -> None:
    json_schema("track")["properties"].clear()
    assert "event" in json_schema("track")["properties"]


def test_schema_of_unknown_call_type() -> None:
    with pytest.raises(ValueError, match="no schema for 'purchase'"):
        json_schema("purchase")


@pytest.mark.parametrize("call_type", [*CALL_TYPES, "batch"])
@given(json_values)
def test_any_json_value_parses_or_is_refused(call_type: str, value: Any) -> None:
    parse(call_type, json.dumps(value).encode())


segment_shaped = st.dictionaries(st.sampled_from(SEGMENT_FIELDS), json_values | rfc3339)


@pytest.mark.parametrize("call_type", CALL_TYPES)
@given(segment_shaped)
def test_segment_shaped_objects_parse_or_are_refused(call_type: str, value: Any) -> None:
    parse(call_type, json.dumps(value).encode())


@given(st.lists(segment_shaped, max_size=ITEMS), segment_shaped)
def test_segment_shaped_batches_parse_or_are_refused(items: list[Any], outer: Any) -> None:
    parse("batch", json.dumps({**outer, "batch": items}).encode())


@pytest.mark.parametrize("call_type", [*CALL_TYPES, "batch"])
@given(st.binary(max_size=64))
def test_any_bytes_parse_or_are_refused(call_type: str, raw: bytes) -> None:
    parse(call_type, raw)


@given(st.binary(max_size=64), st.sampled_from([None, "gzip", "br", "identity"]))
def test_any_bytes_decode_or_are_refused(raw: bytes, encoding: str | None) -> None:
    with contextlib.suppress(EventError):
        decode_body(raw, encoding)


@given(st.binary(max_size=64))
def test_gzip_round_trips(raw: bytes) -> None:
    assert decode_body(gzip.compress(raw), "gzip") == raw
