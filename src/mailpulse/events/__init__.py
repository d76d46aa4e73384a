"""Segment-spec tracking API calls: parsing, validation, limits, write-key auth."""

from mailpulse.events.auth import write_key_from_basic
from mailpulse.events.parse import EventError, ParsedRequest, decode_body, parse_batch, parse_call
from mailpulse.events.schema import MAX_EVENT_BYTES, MAX_REQUEST_BYTES, json_schema

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_REQUEST_BYTES",
    "EventError",
    "ParsedRequest",
    "decode_body",
    "json_schema",
    "parse_batch",
    "parse_call",
    "write_key_from_basic",
]
