"""The Segment HTTP tracking API: `/v1/track`, `/v1/identify`, ..., `/v1/batch`.

This is the hot path, so it is a bare ASGI app in front of the framework: FastAPI's per-request
machinery (middleware stack, routing, dependency solving) cost more than parsing and storing the
event. The OpenAPI document still describes these routes (see `openapi_paths`).

An answer of 200 means every event of the request is durable in the log; a bad request stores
nothing.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mailpulse.access import KeyRing
from mailpulse.api.asgi import JSON, answer_json
from mailpulse.api.auth import AccessRefused, ingest_principal
from mailpulse.api.catalog_events import (
    CatalogEventError,
    UpsertFn,
    catalog_updates,
    is_catalog_update,
)
from mailpulse.catalog import CatalogError, CatalogUnavailable
from mailpulse.events import (
    MAX_REQUEST_BYTES,
    EventError,
    decode_body,
    json_schema,
    parse_batch,
    parse_call,
)
from mailpulse.observe import Metrics
from mailpulse.store import LogUnavailable
from mailpulse.types import Event

log = logging.getLogger("mailpulse.ingest")

CALLS = ("track", "identify", "page", "screen", "group", "alias", "batch")
_ROUTES = {f"/v1/{call}": call for call in CALLS}
_OK = b'{"success":true}'
_OK_HEADERS = [JSON, (b"content-length", str(len(_OK)).encode())]

AppendFn = Callable[[Sequence[Event]], Awaitable[list[Event]]]
ASGIApp = Callable[[dict[str, Any], Callable[..., Any], Callable[..., Any]], Awaitable[None]]

# A messageId for calls that bring none: unique per process by its random prefix, and cheaper
# than uuid4 (whose urandom call gives up the GIL on every event).
_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count()


def _new_message_id() -> str:
    return f"mp-{_PREFIX}-{next(_COUNTER)}"


class _Refusal(Exception):
    def __init__(self, status: int, error: str, where: str | None = None) -> None:
        self.status, self.error, self.where = status, error, where


class TrackingApi:
    """Handles POST /v1/{call}; everything else goes to `fallback`."""

    def __init__(
        self,
        append: AppendFn,
        keys: KeyRing,
        metrics: Metrics,
        fallback: ASGIApp,
        *,
        upsert: UpsertFn | None = None,
    ) -> None:
        """`keys`: who may write; the project's server write keys may also update catalogs."""
        self._append = append
        self._keys = keys
        self._upsert = upsert
        self._metrics = metrics
        self._fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        call = _ROUTES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if call is None:
            await self._fallback(scope, receive, send)
            return
        if scope["method"] != "POST":
            await answer_json(send, 405, {"error": f"{scope['path']} takes POST"})
            return
        try:
            await self._ingest(call, scope, receive)
        except _Refusal as r:
            await answer_json(send, r.status, {"error": r.error, "where": r.where})
        except Exception:
            self._metrics.errors.labels("ingest").inc()
            log.exception("ingestion failed")
            await answer_json(send, 500, {"error": "internal error; nothing was stored"})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS})
            await send({"type": "http.response.body", "body": _OK})

    async def _ingest(self, call: str, scope: dict[str, Any], receive: Any) -> None:
        received_at = time.time()
        headers = {k: v for k, v in scope["headers"] if k in _WANTED_HEADERS}
        try:
            body = decode_body(
                await _read_capped(receive, headers.get(b"content-length")),
                _text(headers.get(b"content-encoding")),
            )
            if call == "batch":
                parsed = parse_batch(body, received_at=received_at, new_id=_new_message_id)
            else:
                parsed = parse_call(call, body, received_at=received_at, new_id=_new_message_id)
        except EventError as exc:
            self._metrics.events_rejected.labels("invalid").inc()
            raise _Refusal(400, exc.reason, exc.where) from exc
        try:
            writer = ingest_principal(
                self._keys, _text(headers.get(b"authorization")), parsed.write_key
            )
        except AccessRefused as refusal:
            self._metrics.events_rejected.labels("auth").inc()
            raise _Refusal(refusal.status, refusal.error) from refusal
        events = parsed.events
        if any(is_catalog_update(ev) for ev in events):
            events = await self._update_catalogs(events, writer.server, batch=call == "batch")
        try:
            await self._append(events)
        except LogUnavailable as exc:
            raise _Refusal(503, f"the event log is unavailable: {exc}") from exc

    async def _update_catalogs(
        self, events: list[Event], from_server: bool, *, batch: bool
    ) -> list[Event]:
        """Apply the request's catalog updates; the events left for the log."""
        try:
            updates = catalog_updates(events, from_server, batch)
        except CatalogEventError as refusal:
            self._metrics.events_rejected.labels("invalid").inc()
            raise _Refusal(refusal.status, refusal.error, refusal.where) from refusal
        if self._upsert is None:
            raise _Refusal(400, "this deployment has no catalog to update")
        try:
            for catalog, items in updates:
                await self._upsert(catalog, items)
        except CatalogUnavailable as exc:
            raise _Refusal(503, f"the catalog is unavailable: {exc}") from exc
        except CatalogError as exc:  # checked above; the store's own checks, to be sure
            raise _Refusal(400, exc.reason, exc.where) from exc
        return [ev for ev in events if not is_catalog_update(ev)]


_WANTED_HEADERS = frozenset((b"authorization", b"content-encoding", b"content-length"))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _read_capped(receive: Any, declared: bytes | None) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise EventError(
            f"the request body is {int(declared)} bytes; at most {MAX_REQUEST_BYTES} are allowed"
        )
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise EventError("the client went away before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise EventError(f"the request body exceeds {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "where": {"type": ["string", "null"]}},
}


def openapi_paths() -> dict[str, Any]:
    """The tracking routes as OpenAPI path items (the routes themselves bypass FastAPI)."""

    def error(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }

    paths = {}
    for call in CALLS:
        paths[f"/v1/{call}"] = {
            "post": {
                "tags": ["tracking"],
                "summary": f"Segment `{call}` call" if call != "batch" else "Several calls at once",
                "operationId": f"ingest_{call}",
                "security": [{"writeKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": json_schema(call)}},
                },
                "responses": {
                    "200": {
                        "description": "Durable in the log.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["success"],
                                    "properties": {"success": {"type": "boolean"}},
                                }
                            }
                        },
                    },
                    "400": error("The request is invalid; `error` says why, `where` where."),
                    "401": error("Missing, unknown or revoked write key."),
                    "403": error(
                        "A key of scope read, or Catalog Item Updated sent with a key that is "
                        "not a server write key."
                    ),
                    "503": error("The log is unavailable; nothing was stored."),
                },
            }
        }
    return paths
