"""Rate limits on the pages and links mail carries, per client address: a layer in front of
the app that looks only at paths under PUBLIC_PREFIXES (unsubscribe /u/, preferences and
confirmations /p/, tracking /o/ and /c/), so the tracking API and the admin API never pay
for it.

Each client has a token bucket: `rate` tokens a second up to `burst`; a request takes one, and
without one it is answered 429 with Retry-After and a reason, as HTML to a browser and as JSON
to anything else. A client is its IPv4 address, or its IPv6 /64 (one subscriber's share, which
a client can hop within at will). Behind a proxy the address is the one uvicorn reports: the
proxy's X-Forwarded-For when the proxy is trusted (its FORWARDED_ALLOW_IPS).

Memory is bounded: at most MAX_CLIENTS buckets, least recently used first out. A bucket
dropped after it refilled changes nothing; one dropped sooner (more clients at once than
that) lets its client start again with a full bucket.
"""

from __future__ import annotations

import html
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from mailpulse.api.asgi import answer, answer_json
from mailpulse.observe import Metrics
from mailpulse.project import PublicLimit

PUBLIC_PREFIXES = ("/u/", "/p/", "/o/", "/c/")
MAX_CLIENTS = 100_000


def client_of(scope: dict[str, Any]) -> str:
    """The bucket a request counts against: its IPv4 address, or the /64 of its IPv6 one."""
    host = (scope.get("client") or ("",))[0] or ""
    if ":" not in host:
        return host
    try:
        network = ipaddress.IPv6Network(f"{host}/64", strict=False)
    except ValueError:
        return host
    return str(network.network_address)


class ClientBuckets:
    """Token buckets by client, at most `max_clients` of them."""

    def __init__(
        self,
        limit: PublicLimit,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate, self._burst = limit.rate, float(limit.burst)
        self._max = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: str) -> float:
        """0 when the client may go on (a token is taken), else the seconds until it may."""
        now = self._clock()
        tokens, at = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self._rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait

    def give_back(self, client: str) -> None:
        """Return the token `take` took: the request turned out not to count."""
        held = self._buckets.get(client)
        if held is not None:
            self._buckets[client] = (min(self._burst, held[0] + 1.0), held[1])


def document_limits(paths: dict[str, Any]) -> None:
    """Add the 429 this layer may answer to every operation of the OpenAPI document's paths
    under PUBLIC_PREFIXES."""
    limited = {
        "description": "Too many requests from this client; `Retry-After` says when to retry.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}},
            "text/html": {"schema": {"type": "string"}},
        },
    }
    for path, operations in paths.items():
        if path.startswith(PUBLIC_PREFIXES):
            for operation in operations.values():
                operation.setdefault("responses", {})["429"] = limited


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Too many requests</title></head><body><h1>Too many requests</h1>
<p>{reason}</p></body></html>"""


class PublicRateLimit:
    def __init__(
        self, app: Any, limit: PublicLimit, metrics: Metrics, buckets: ClientBuckets | None = None
    ) -> None:
        self._app = app
        self._limit = limit
        self._metrics = metrics
        self._buckets = buckets or ClientBuckets(limit)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PUBLIC_PREFIXES):
            await self._app(scope, receive, send)
            return
        wait = self._buckets.take(client_of(scope))
        if not wait:
            await self._app(scope, receive, send)
            return
        self._metrics.public_limited.labels(scope["path"][:3]).inc()
        seconds = max(1, math.ceil(wait))
        reason = (
            f"too many requests from your address: at most {self._limit.rate:g} a second "
            f"({self._limit.burst} at once); try again in {seconds} s"
        )
        headers = [(b"retry-after", str(seconds).encode())]
        accept = dict(scope["headers"]).get(b"accept", b"")
        if b"text/html" in accept:
            page = _PAGE.format(reason=html.escape(reason)).encode()
            await answer(send, 429, page, b"text/html; charset=utf-8", headers)
        else:
            await answer_json(send, 429, {"error": reason, "where": None}, headers)
