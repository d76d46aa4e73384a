"""The reference for trigger latency: HTTP in, SMTP out, nothing between.

A bare ASGI app on the same server stack (uvicorn, uvloop) that turns each POST into a fixed
2 KB message to the recipient named by `userId`, through the same SMTP client, with no log,
no profile, no journey, no template and no signature. What mailpulse adds on top of this is
the price of durability, personalization and DKIM.

For `/v1/batch` it only reads the body and answers: the floor of the ingest benchmark.

usage: python -m bench.bare_relay HTTP_PORT SMTP_PORT
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
import uvicorn

from mailpulse.delivery import SmtpRelay
from mailpulse.types import RenderedMessage

_BODY = b"Subject: reference\r\nFrom: a@bench.example.com\r\n\r\n" + b"x" * 2000 + b"\r\n"


def relay_app(smtp_port: int) -> Any:
    relay = SmtpRelay("127.0.0.1", smtp_port, starttls=False, max_connections=8)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"16")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"success":true}'})
        if scope["path"] == "/v1/batch":
            return  # the ingest benchmark's floor: HTTP transfer only
        rcpt = orjson.loads(body)["userId"]
        await relay.send(
            RenderedMessage(
                key=rcpt,
                message_id="<x@y>",
                mail_from="a@bench.example.com",
                rcpt_to=rcpt,
                data=_BODY,
            )
        )

    return app


if __name__ == "__main__":
    http_port, smtp_port = int(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(
        relay_app(smtp_port),
        host="127.0.0.1",
        port=http_port,
        loop="uvloop",
        log_level="warning",
        lifespan="off",
    )
