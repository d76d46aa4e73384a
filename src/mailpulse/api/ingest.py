"""The Segment HTTP tracking API: `/v1/track`, `/v1/identify`, ..., `/v1/batch`.

An answer of 200 means every event of the request is durable in the log; a bad request
stores nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from mailpulse.api.auth import check_write_key
from mailpulse.api.models import ERRORS, Accepted, ErrorBody
from mailpulse.events import (
    MAX_REQUEST_BYTES,
    EventError,
    decode_body,
    json_schema,
    parse_batch,
    parse_call,
)
from mailpulse.store import LogUnavailable
from mailpulse.types import Event

CALLS = ("track", "identify", "page", "screen", "group", "alias", "batch")
_OK = b'{"success":true}'

AppendFn = Callable[[Sequence[Event]], Awaitable[list[Event]]]


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise EventError(
            f"the request body is {declared} bytes; at most {MAX_REQUEST_BYTES} are allowed"
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise EventError(f"the request body exceeds {MAX_REQUEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def ingest_router(append: AppendFn, write_keys: frozenset[str]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["tracking"])

    def endpoint(call: str) -> Callable[[Request], Awaitable[Response]]:
        async def receive(request: Request) -> Response:
            received_at = time.time()
            try:
                body = decode_body(
                    await _read_capped(request), request.headers.get("content-encoding")
                )
                if call == "batch":
                    parsed = parse_batch(body, received_at=received_at)
                else:
                    parsed = parse_call(call, body, received_at=received_at)
            except EventError as exc:
                request.app.state.metrics.events_rejected.labels("invalid").inc()
                return JSONResponse({"error": exc.reason, "where": exc.where}, status_code=400)
            check_write_key(write_keys, request.headers.get("authorization"), parsed.write_key)
            try:
                await append(parsed.events)
            except LogUnavailable as exc:
                raise HTTPException(503, f"the event log is unavailable: {exc}") from exc
            return Response(_OK, media_type="application/json")

        receive.__name__ = f"ingest_{call}"
        return receive

    for call in CALLS:
        router.add_api_route(
            f"/{call}",
            endpoint(call),
            methods=["POST"],
            summary=f"Segment `{call}` call" if call != "batch" else "Several calls at once",
            response_model=Accepted,
            responses={**ERRORS, 503: {"model": ErrorBody, "description": "Log unavailable."}},
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": json_schema(call)}},
                }
            },
        )
    return router
