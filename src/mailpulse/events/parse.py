"""Segment HTTP tracking API bodies in, `Event`s out.

Every failure is an `EventError` that says what is wrong and where (`batch[3].userId`). One bad
item fails the whole request: Segment answers 400 and stores nothing, and so do we.
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from mailpulse.errors import MailpulseError
from mailpulse.events.schema import (
    CALLS,
    MAX_EVENT_BYTES,
    MAX_REQUEST_BYTES,
    NO_NUL,
    Alias,
    Batch,
    BatchItem,
    Call,
    Group,
    Identify,
    Page,
    Screen,
    Track,
)
from mailpulse.types import Event


class EventError(MailpulseError, ValueError):
    """A request the tracking API must refuse (HTTP 400): `reason`, and `where` when known."""

    def __init__(self, reason: str, where: str | None = None) -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {reason}" if where else reason)


class ParsedRequest(msgspec.Struct, kw_only=True):
    """The events of one accepted request, and the `writeKey` its body carried (if any)."""

    events: list[Event]
    write_key: str | None = None


def _new_message_id() -> str:
    return uuid.uuid4().hex


_CALL_DECODERS = {name: msgspec.json.Decoder(cls) for name, cls in CALLS.items()}
_BATCH_DECODER = msgspec.json.Decoder(Batch[msgspec.Raw])
_ITEM_DECODER = msgspec.json.Decoder(BatchItem)
_CALL_NAMES = ", ".join(sorted(CALLS))
_GZIP_ENCODINGS = {"gzip", "x-gzip"}
_GZIP_WINDOW = 16 + zlib.MAX_WBITS  # zlib's way of saying "expect a gzip header and trailer"


def parse_call(
    call_type: str,
    body: bytes,
    *,
    received_at: float,
    new_id: Callable[[], str] = _new_message_id,
) -> ParsedRequest:
    """Parse the body of `/v1/<call_type>` (track, identify, page, screen, group or alias)."""
    decoder = _CALL_DECODERS.get(call_type)
    if decoder is None:
        raise EventError(f"unknown call type {call_type!r}; expected one of {_CALL_NAMES}")
    if len(body) > MAX_EVENT_BYTES:
        raise EventError(f"the event is {len(body)} bytes; at most {MAX_EVENT_BYTES} are allowed")
    call = _decode(decoder, body, None)
    event = _event(call, call_type, None, received_at, None, {}, new_id)
    return ParsedRequest(events=[event], write_key=call.writeKey or None)


def parse_batch(
    body: bytes,
    *,
    received_at: float,
    new_id: Callable[[], str] = _new_message_id,
) -> ParsedRequest:
    """Parse the body of `/v1/batch`: `{"batch": [call, ...]}`, each call tagged by `type`."""
    if len(body) > MAX_REQUEST_BYTES:
        raise EventError(
            f"the request body is {len(body)} bytes; at most {MAX_REQUEST_BYTES} are allowed"
        )
    batch = _decode(_BATCH_DECODER, body, None)
    events = []
    for index, raw in enumerate(batch.batch):
        where = f"batch[{index}]"
        if len(raw) > MAX_EVENT_BYTES:
            raise EventError(
                f"the event is {len(raw)} bytes; at most {MAX_EVENT_BYTES} are allowed", where
            )
        item = _decode(_ITEM_DECODER, raw, where)
        call_type = item.__struct_config__.tag
        events.append(
            _event(item, call_type, where, received_at, batch.sentAt, batch.context, new_id)
        )
    return ParsedRequest(events=events, write_key=batch.writeKey or None)


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """The request body as JSON bytes: gunzipped when `Content-Encoding: gzip`, size-checked.

    Decompression stops one byte past the request limit, so a gzip bomb costs at most that much.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise EventError(
            f"the request body is {len(body)} bytes; at most {MAX_REQUEST_BYTES} are allowed"
        )
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in _GZIP_ENCODINGS:
        raise EventError(f"unsupported Content-Encoding {content_encoding!r}; use gzip or none")
    return _gunzip(body)


def _gunzip(body: bytes) -> bytes:
    out = bytearray()
    rest = body
    # A gzip file may hold several members one after another; each needs a fresh decompressor.
    while True:
        decompressor = zlib.decompressobj(_GZIP_WINDOW)
        try:
            out += decompressor.decompress(rest, MAX_REQUEST_BYTES + 1 - len(out))
        except zlib.error as error:
            raise EventError(f"the body is not valid gzip ({error})") from None
        if len(out) > MAX_REQUEST_BYTES:
            raise EventError(f"the body unzips to more than {MAX_REQUEST_BYTES} bytes")
        if not decompressor.eof:
            raise EventError("the body is not valid gzip (truncated)")
        rest = decompressor.unused_data
        if not rest:
            return bytes(out)


def _decode(decoder: msgspec.json.Decoder, data: bytes | msgspec.Raw, where: str | None) -> Any:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as error:
        raise _invalid(str(error), where) from None
    except msgspec.DecodeError as error:
        raise EventError(f"not valid JSON ({error})", where) from None
    except UnicodeDecodeError:
        raise EventError("not valid JSON (a string is not UTF-8)", where) from None
    except RecursionError:
        raise EventError("JSON is nested too deeply", where) from None


# msgspec says e.g. "Object missing required field `event` - at `$.batch[0]`".
_LOCATED = re.compile(r"(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>.*)`")
_EXPECTED_OBJECT = re.compile(r"Expected `object`, got `(?P<got>.*)`")
_UNKNOWN_TAG = re.compile(r"Invalid value (?P<value>.*)")
_CLEARER = {
    "Expected `str` of length >= 1": "must not be empty",
    "Expected `array` of length >= 1": "must not be empty",
    f"Expected `str` matching regex {NO_NUL!r}": "must not contain a NUL character",
    "Invalid RFC3339 encoded datetime": (
        "must be an ISO-8601 date-time such as 2015-02-23T22:28:55.111Z"
    ),
}


def _invalid(message: str, where: str | None) -> EventError:
    located = _LOCATED.fullmatch(message)
    assert located is not None  # the pattern matches any text
    reason, path = located["reason"], (located["path"] or "").lstrip(".")
    if missing := _MISSING.fullmatch(reason):
        path = _join(path, missing["field"])
        reason = "is required"
    elif expected := _EXPECTED_OBJECT.fullmatch(reason):
        reason = f"must be a JSON object, not {expected['got']}"
    elif (unknown := _UNKNOWN_TAG.fullmatch(reason)) and path == "type":
        reason = f"unknown call type {unknown['value']}"
    reason = _CLEARER.get(reason, reason)
    if path == "type":
        reason = f"{reason}; expected one of {_CALL_NAMES}"
    return EventError(reason, _join(where, path) or None)


def _join(where: str | None, path: str) -> str:
    if not where:
        return path
    if not path:
        return where
    return f"{where}{path}" if path.startswith("[") else f"{where}.{path}"


def _event(
    call: Call,
    call_type: str,
    where: str | None,
    received_at: float,
    batch_sent_at: datetime | None,
    batch_context: dict[str, Any],
    new_id: Callable[[], str],
) -> Event:
    user_id = _identifier(call.userId)
    anonymous_id = _identifier(call.anonymousId)
    contact_key = user_id or anonymous_id
    if contact_key is None:
        raise EventError("one of userId or anonymousId is required", where)
    if call.timestamp is None:
        timestamp = received_at
    else:
        timestamp = _epoch(call.timestamp)
        sent_at = call.sentAt or batch_sent_at
        if sent_at is not None:
            # Segment's clock-skew correction: trust the device's clock only for the interval
            # between the event and the send, and our own for when it was sent.
            timestamp += received_at - _epoch(sent_at)
    event = Event(
        type=call_type,
        message_id=call.messageId or new_id(),
        contact_key=contact_key,
        user_id=user_id,
        anonymous_id=anonymous_id,
        context={**batch_context, **call.context} if batch_context else call.context,
        timestamp=timestamp,
        received_at=received_at,
    )
    if isinstance(call, Track):
        event.event = call.event
        event.properties = call.properties
    elif isinstance(call, Identify):
        event.traits = call.traits
    elif isinstance(call, Page | Screen):
        event.name = call.name
        event.properties = call.properties
        if call.category is not None:
            event.properties["category"] = call.category
    elif isinstance(call, Group):
        event.group_id = _identifier(call.groupId)
        event.traits = call.traits
    elif isinstance(call, Alias):
        if user_id is None:
            raise EventError("alias requires userId", _join(where, "userId"))
        event.previous_id = _identifier(call.previousId)
    return event


def _identifier(value: str | int | float | None) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
