"""Refused calls: each raises EventError naming what is wrong and where."""

from __future__ import annotations

import json

import pytest

from mailpulse.events import (
    MAX_EVENT_BYTES,
    MAX_REQUEST_BYTES,
    EventError,
    parse_batch,
    parse_call,
)

RECEIVED_AT = 1_700_000_000.0
TYPES = "expected one of alias, group, identify, page, screen, track"


def body(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def call_error(call_type: str, raw: bytes) -> EventError:
    with pytest.raises(EventError) as caught:
        parse_call(call_type, raw, received_at=RECEIVED_AT)
    return caught.value


def batch_error(raw: bytes) -> EventError:
    with pytest.raises(EventError) as caught:
        parse_batch(raw, received_at=RECEIVED_AT)
    return caught.value


@pytest.mark.parametrize(
    ("call_type", "raw", "where", "reason"),
    [
        ("track", b'{"userId": "u", "event": ', None, "not valid JSON"),
        ("track", b"", None, "not valid JSON"),
        ("track", b'{"userId": "u", "event": "e"} trailing', None, "not valid JSON"),
        ("track", b'{"userId": "\xff", "event": "e"}', None, "not valid JSON"),
        ("track", b"[]", None, "must be a JSON object, not array"),
        ("identify", b'"u"', None, "must be a JSON object, not str"),
        ("track", b'{"event": "e"}', None, "one of userId or anonymousId is required"),
        (
            "track",
            b'{"userId": "", "anonymousId": null, "event": "e"}',
            None,
            "one of userId or anonymousId is required",
        ),
        ("track", b'{"userId": "u"}', "event", "is required"),
        ("track", b'{"userId": "u", "event": ""}', "event", "must not be empty"),
        ("track", b'{"userId": "u", "event": 5}', "event", "Expected `str`, got `int`"),
        ("alias", b'{"userId": "u"}', "previousId", "is required"),
        ("alias", b'{"userId": "u", "previousId": ""}', "previousId", "must not be empty"),
        ("alias", b'{"anonymousId": "a", "previousId": "p"}', "userId", "alias requires userId"),
        ("group", b'{"userId": "u"}', "groupId", "is required"),
        ("group", b'{"userId": "u", "groupId": []}', "groupId", "got `array`"),
        (
            "track",
            b'{"userId": "u", "event": "e", "properties": []}',
            "properties",
            "must be a JSON object, not array",
        ),
        ("identify", b'{"userId": "u", "traits": "vip"}', "traits", "must be a JSON object"),
        ("page", b'{"userId": "u", "context": null}', "context", "must be a JSON object"),
        ("page", b'{"userId": "u", "integrations": 1}', "integrations", "must be a JSON object"),
        ("page", b'{"userId": "u", "name": 3}', "name", "Expected `str"),
        (
            "track",
            b'{"userId": "u", "event": "e", "timestamp": "yesterday"}',
            "timestamp",
            "must be an ISO-8601 date-time",
        ),
        (
            "track",
            b'{"userId": "u", "event": "e", "timestamp": "2015-02-30T00:00:00Z"}',
            "timestamp",
            "must be an ISO-8601 date-time",
        ),
        ("track", b'{"userId": "u", "event": "e", "timestamp": 1700000000}', "timestamp", "got"),
        ("screen", b'{"userId": "u", "sentAt": "soon"}', "sentAt", "ISO-8601"),
        ("identify", b'{"userId": true}', "userId", "got `bool`"),
        ("identify", b'{"userId": {"id": 1}}', "userId", "got `object`"),
        ("identify", b'{"anonymousId": ["a"]}', "anonymousId", "got `array`"),
        ("identify", b'{"userId": 1e400}', "userId", "out of range"),
        ("identify", b'{"userId": ' + b"9" * 5000 + b"}", "userId", "out of range"),
        ("identify", b'{"userId": "u", "messageId": 7}', "messageId", "got `int`"),
        ("identify", b'{"userId": "u", "writeKey": 7}', "writeKey", "got `int`"),
        (
            "identify",
            b'{"userId": "u", "traits": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
            None,
            "nested too deeply",
        ),
        ("batch", b'{"batch": []}', None, "unknown call type 'batch'; " + TYPES),
        ("purchase", b'{"userId": "u"}', None, "unknown call type 'purchase'"),
    ],
)
def test_bad_call(call_type: str, raw: bytes, where: str | None, reason: str) -> None:
    error = call_error(call_type, raw)
    assert error.where == where
    assert reason in error.reason
    assert str(error) == (f"{where}: {error.reason}" if where else error.reason)


def test_error_is_a_value_error() -> None:
    assert isinstance(call_error("track", b"{}"), ValueError)


def item(**fields: object) -> dict[str, object]:
    return {"type": "track", "userId": "u", "event": "Clicked", **fields}


@pytest.mark.parametrize(
    ("value", "where", "reason"),
    [
        ({}, "batch", "is required"),
        ({"batch": {}}, "batch", "Expected `array`, got `object`"),
        ({"batch": "track"}, "batch", "Expected `array`, got `str`"),
        ({"batch": None}, "batch", "got `null`"),
        ({"batch": []}, "batch", "must not be empty"),
        ({"batch": [5]}, "batch[0]", "must be a JSON object, not int"),
        ({"batch": [item(), item(type="purchase")]}, "batch[1].type", "unknown call type"),
        ({"batch": [item(type="x - at `$.y`")]}, "batch[0].type", "unknown call type 'x - at"),
        ({"batch": [{"userId": "u", "event": "e"}]}, "batch[0].type", "is required; " + TYPES),
        ({"batch": [item(type=1)]}, "batch[0].type", "Expected `str`; " + TYPES),
        (
            {"batch": [item(), item(), item(), item(userId=None)]},
            "batch[3]",
            "one of userId or anonymousId is required",
        ),
        ({"batch": [item(), item(event="")]}, "batch[1].event", "must not be empty"),
        ({"batch": [item(timestamp="noon")]}, "batch[0].timestamp", "ISO-8601"),
        ({"batch": [item(properties=[1])]}, "batch[0].properties", "must be a JSON object"),
        ({"batch": [item(userId=False)]}, "batch[0].userId", "got `bool`"),
        (
            {"batch": [{"type": "alias", "anonymousId": "a", "previousId": "p"}]},
            "batch[0].userId",
            "alias requires userId",
        ),
        ({"batch": [{"type": "group", "userId": "u"}]}, "batch[0].groupId", "is required"),
        ({"batch": [item()], "sentAt": "later"}, "sentAt", "ISO-8601"),
        ({"batch": [item()], "context": []}, "context", "must be a JSON object"),
        ({"batch": [item()], "writeKey": 1}, "writeKey", "got `int`"),
    ],
)
def test_bad_batch(value: object, where: str, reason: str) -> None:
    error = batch_error(body(value))
    assert error.where == where
    assert reason in error.reason


def test_bad_item_message_names_its_index() -> None:
    error = batch_error(body({"batch": [item(), item(), item(), item(userId=None)]}))
    assert str(error) == "batch[3]: one of userId or anonymousId is required"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"batch": [', "not valid JSON"),
        (b'{"batch": [{"type": "track", "userId": tru}]}', "not valid JSON"),
        (b"null", "must be a JSON object, not null"),
        (b"[]", "must be a JSON object, not array"),
    ],
)
def test_batch_body_not_a_json_object(raw: bytes, reason: str) -> None:
    error = batch_error(raw)
    assert error.where is None
    assert reason in error.reason


def test_invalid_utf8_inside_an_item_names_the_item() -> None:
    error = batch_error(b'{"batch": [{"type": "track", "userId": "\xff", "event": "e"}]}')
    assert error.where == "batch[0]"
    assert "not valid JSON" in error.reason


# Sizes: JSON whitespace pads a body or an item to an exact byte count.


def padded_call(size: int) -> bytes:
    raw = body({"userId": "u", "event": "Clicked"})
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def padded_item(size: int) -> bytes:
    raw = body(item())
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def padded_batch(size: int, items: list[bytes]) -> bytes:
    raw = b'{"batch":[' + b",".join(items) + b"]}"
    return raw + b" " * (size - len(raw))


def test_single_call_at_the_event_limit_is_accepted() -> None:
    raw = padded_call(MAX_EVENT_BYTES)
    assert len(raw) == 32768
    assert len(parse_call("track", raw, received_at=RECEIVED_AT).events) == 1


def test_single_call_one_byte_over_the_event_limit_is_refused() -> None:
    error = call_error("track", padded_call(MAX_EVENT_BYTES + 1))
    assert error.where is None
    assert error.reason == "the event is 32769 bytes; at most 32768 are allowed"


def test_batch_item_at_the_event_limit_is_accepted() -> None:
    raw = padded_batch(100_000, [padded_item(100), padded_item(MAX_EVENT_BYTES)])
    assert len(parse_batch(raw, received_at=RECEIVED_AT).events) == 2


def test_batch_item_one_byte_over_the_event_limit_is_refused() -> None:
    raw = padded_batch(100_000, [padded_item(100), padded_item(MAX_EVENT_BYTES + 1)])
    error = batch_error(raw)
    assert error.where == "batch[1]"
    assert error.reason == "the event is 32769 bytes; at most 32768 are allowed"


def test_batch_at_the_request_limit_is_accepted() -> None:
    raw = padded_batch(MAX_REQUEST_BYTES, [padded_item(30_000)] * 16)
    assert len(raw) == 512000
    assert len(parse_batch(raw, received_at=RECEIVED_AT).events) == 16


def test_batch_one_byte_over_the_request_limit_is_refused() -> None:
    error = batch_error(padded_batch(MAX_REQUEST_BYTES + 1, [padded_item(30_000)] * 16))
    assert error.where is None
    assert error.reason == "the request body is 512001 bytes; at most 512000 are allowed"
