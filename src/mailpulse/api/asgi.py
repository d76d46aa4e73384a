"""Answers sent from bare ASGI code (the tracking API, the layers in front of FastAPI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

JSON = (b"content-type", b"application/json")


async def answer(
    send: Any,
    status: int,
    body: bytes,
    content_type: bytes = JSON[1],
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    head = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def answer_json(
    send: Any, status: int, payload: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await answer(send, status, orjson.dumps(payload), headers=headers)
