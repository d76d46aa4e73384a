"""Request bodies of the Segment HTTP tracking API, as msgspec Structs.

Field names are Segment's own camelCase so bodies decode without renaming. Unknown fields are
ignored (SDKs add `_metadata`, `version`, `receivedAt`, ...). A single call's body is one of the
six call Structs; a batch item is the same call tagged by its `type` field.
"""

from __future__ import annotations

import copy
import functools
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec

MAX_EVENT_BYTES = 32768
"""Segment's limit for one call, measured on its raw JSON."""
MAX_REQUEST_BYTES = 512000
"""Segment's limit for one request body (after gunzip)."""

_LENGTH_HINT = {"maxLength": MAX_EVENT_BYTES}

NonEmptyText = Annotated[str, msgspec.Meta(min_length=1, extra_json_schema=_LENGTH_HINT)]
Text = Annotated[str, msgspec.Meta(extra_json_schema=_LENGTH_HINT)]
# Ids become text columns of the log, and PostgreSQL text cannot hold a NUL character. Only
# ids are checked: everything else travels in the event's JSON body, where a NUL is escaped.
NO_NUL = "^[^\x00]*$"
IdText = Annotated[str, msgspec.Meta(pattern=NO_NUL, extra_json_schema=_LENGTH_HINT)]
NonEmptyIdText = Annotated[
    str, msgspec.Meta(min_length=1, pattern=NO_NUL, extra_json_schema=_LENGTH_HINT)
]
# Segment ids are strings; some SDKs send numbers, which are kept as text.
Identifier = IdText | int | float
RequiredIdentifier = NonEmptyIdText | int | float
# Naive date-times are read as UTC; the schema still asks for RFC 3339 with an offset.
Timestamp = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]
JsonObject = dict[str, Any]
ItemT = TypeVar("ItemT")


class Call(msgspec.Struct, kw_only=True):
    """Fields every Segment call may carry; one of userId or anonymousId is required."""

    userId: Identifier | None = None
    anonymousId: Identifier | None = None
    messageId: IdText | None = None
    timestamp: Timestamp | None = None
    sentAt: Timestamp | None = None
    context: JsonObject = msgspec.field(default_factory=dict)
    integrations: JsonObject = msgspec.field(default_factory=dict)
    writeKey: Text | None = None


class Track(Call, kw_only=True):
    """An action the user performed, with its properties."""

    event: NonEmptyText
    properties: JsonObject = msgspec.field(default_factory=dict)


class Identify(Call, kw_only=True):
    """Who the user is, with their traits."""

    traits: JsonObject = msgspec.field(default_factory=dict)


class Page(Call, kw_only=True):
    """A web page the user viewed."""

    name: Text | None = None
    category: Text | None = None
    properties: JsonObject = msgspec.field(default_factory=dict)


class Screen(Call, kw_only=True):
    """A mobile app screen the user viewed."""

    name: Text | None = None
    category: Text | None = None
    properties: JsonObject = msgspec.field(default_factory=dict)


class Group(Call, kw_only=True):
    """The user's membership of a group (an account, a company), with the group's traits."""

    groupId: RequiredIdentifier
    traits: JsonObject = msgspec.field(default_factory=dict)


class Alias(Call, kw_only=True):
    """Merges a previous identity into userId (which alias requires)."""

    previousId: RequiredIdentifier


class TrackItem(Track, tag="track", tag_field="type"):
    """A track call inside a batch."""


class IdentifyItem(Identify, tag="identify", tag_field="type"):
    """An identify call inside a batch."""


class PageItem(Page, tag="page", tag_field="type"):
    """A page call inside a batch."""


class ScreenItem(Screen, tag="screen", tag_field="type"):
    """A screen call inside a batch."""


class GroupItem(Group, tag="group", tag_field="type"):
    """A group call inside a batch."""


class AliasItem(Alias, tag="alias", tag_field="type"):
    """An alias call inside a batch."""


BatchItem = TrackItem | IdentifyItem | PageItem | ScreenItem | GroupItem | AliasItem


class Batch(msgspec.Struct, Generic[ItemT], kw_only=True):
    """Several calls in one request.

    `context` and `integrations` here apply to every item; `sentAt` is the fallback for items
    without their own. Parsing reads items as `msgspec.Raw` so each one's size is measured as
    sent and an error can name its index; the schema describes them as `BatchItem`s.
    """

    batch: Annotated[list[ItemT], msgspec.Meta(min_length=1)]
    context: JsonObject = msgspec.field(default_factory=dict)
    integrations: JsonObject = msgspec.field(default_factory=dict)
    sentAt: Timestamp | None = None
    writeKey: Text | None = None


CALLS: dict[str, type[Call]] = {
    "track": Track,
    "identify": Identify,
    "page": Page,
    "screen": Screen,
    "group": Group,
    "alias": Alias,
}


_NON_EMPTY_IDENTIFIER = {
    "anyOf": [
        {"type": "string", "minLength": 1, "maxLength": MAX_EVENT_BYTES, "pattern": NO_NUL},
        {"type": "integer"},
        {"type": "number"},
    ]
}
_IDENTIFIED = [
    {"required": [field], "properties": {field: _NON_EMPTY_IDENTIFIER}}
    for field in ("userId", "anonymousId")
]


def json_schema(call_type: str) -> dict[str, Any]:
    """A self-contained JSON Schema (OpenAPI 3.1) for the body of `/v1/<call_type>`.

    `call_type` is one of the six calls or `batch`. The schema has no `$ref`, so it can go
    straight into a route's `openapi_extra`. Raises ValueError for an unknown call type.
    """
    schemas = _schemas()
    if call_type not in schemas:
        raise ValueError(f"no schema for {call_type!r}; expected one of {', '.join(schemas)}")
    return copy.deepcopy(schemas[call_type])


@functools.cache
def _schemas() -> dict[str, dict[str, Any]]:
    names = [*CALLS, "batch"]
    refs, definitions = msgspec.json.schema_components([*CALLS.values(), Batch[BatchItem]])
    for name, definition in definitions.items():
        properties = definition.get("properties", {})
        if name in (Alias.__name__, AliasItem.__name__):
            definition["required"].append("userId")
            properties["userId"] = _NON_EMPTY_IDENTIFIER
        elif "userId" in properties:
            definition["anyOf"] = _IDENTIFIED
    return {name: _inline(ref, definitions) for name, ref in zip(names, refs, strict=True)}


def _inline(schema: Any, definitions: dict[str, Any]) -> Any:
    """`schema` with every `#/$defs/` reference replaced by its definition.

    OpenAPI resolves `#/...` against the whole document, so the `$defs` msgspec refers to would
    dangle there; discriminator mappings name those references too and go as well.
    """
    if isinstance(schema, list):
        return [_inline(item, definitions) for item in schema]
    if not isinstance(schema, dict):
        return schema
    inlined = {k: _inline(v, definitions) for k, v in schema.items() if k != "discriminator"}
    if "$ref" in inlined:
        name = inlined.pop("$ref").removeprefix("#/$defs/")
        inlined = {**_inline(definitions[name], definitions), **inlined}
    return inlined
