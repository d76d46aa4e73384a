"""The tracking endpoints a message's pixel and links reach: public, no credential but the token.

    GET /o/{token}   the open pixel: always a 1x1 transparent GIF (`Cache-Control: no-store`),
                     whatever the token; only a valid one records an `Email Opened`
    GET /c/{token}   a tracked link: 302 to the address the token was signed over, after its
                     `Email Clicked` is recorded; a bad token is a 404 (an HTML page or JSON,
                     as the client accepts) and never a redirect anywhere
    (HEAD too, on both: answered alike, and recorded as a machine's)

The token says which message (its send key) and, for a click, where the link led; what else
the event carries (contact, campaign, journey, variant, template) is read from the message's
outbox row, as every lifecycle event of the message carries it, with the IP, the user agent
and whether a machine did it (mailpulse.feedback.machines). The event is appended to the log
before the answer; if the log cannot take it, the reader still gets the pixel or reaches the
page (the event is then lost, and logged).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mailpulse.feedback.machines import MachineRules, Verdict
from mailpulse.observe import Metrics
from mailpulse.render.tracking import read_click, read_open
from mailpulse.runtime.lifecycle import Lifecycle, lifecycle_event
from mailpulse.store import StateStore
from mailpulse.tokens import TokenError, TokenSigner
from mailpulse.types import Event

log = logging.getLogger("mailpulse.tracking")

AppendFn = Callable[[Sequence[Event]], Awaitable[Any]]
# The smallest transparent GIF: 1x1, one transparent colour (GIF89a, 43 bytes).
PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
_NO_STORE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}
_MAX_USER_AGENT = 512  # characters kept: an event is at most 32 KB
_NOT_FOUND_PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>Link not found</title></head>"
    "<body><h1>This link is not valid</h1><p>It may have been copied in part. Open it from "
    "the message again.</p></body></html>"
)


def tracking_router(
    *,
    append: AppendFn,
    state: StateStore,
    tokens: TokenSigner,
    rules: MachineRules,
    metrics: Metrics,
    clock: Callable[[], float] = time.time,
) -> APIRouter:
    router = APIRouter(tags=["tracking"])

    async def record(
        kind: Lifecycle, key: str, request: Request, verdict: Verdict, **more: Any
    ) -> None:
        row = await state.outbox_get(key)
        if row is None:
            log.warning("%s for a message not in the outbox (%s): not recorded", kind, key)
            return
        facts = engagement_facts(_ip(request), _user_agent(request), verdict, **more)
        event = lifecycle_event(kind, row.intent, clock(), **facts)
        # One message may be opened and clicked many times: each is an event of its own.
        event = msgspec.structs.replace(event, message_id=f"{event.message_id}:{uuid.uuid4()}")
        try:
            await append([event])
        except Exception:  # the reader still gets the page; the event is lost
            metrics.errors.labels("tracking").inc()
            log.exception("%s of %s could not be appended", kind, key)
            return
        count_engagement(metrics, event)

    @router.get(
        "/o/{token}",
        response_class=Response,
        responses={200: {"content": {"image/gif": {}}, "description": "A 1x1 transparent GIF."}},
    )
    async def pixel(token: str, request: Request) -> Response:
        """The open pixel: always the GIF; a valid token records an `Email Opened`."""
        try:
            opened = read_open(tokens, token)
        except TokenError:
            pass
        else:
            verdict = rules.open(
                method=request.method, user_agent=_user_agent(request), ip=_ip(request)
            )
            await record(Lifecycle.OPENED, opened.key, request, verdict)
        return Response(PIXEL_GIF, media_type="image/gif", headers=_NO_STORE)

    @router.get(
        "/c/{token}",
        response_class=RedirectResponse,
        status_code=302,
        responses={404: {"description": "Not a link of a message of this project."}},
    )
    async def click(token: str, request: Request) -> Response:
        """A tracked link: records an `Email Clicked`, then 302 to where the link led."""
        try:
            clicked = read_click(tokens, token)
        except TokenError as exc:
            return _not_found(request, str(exc))
        verdict = rules.click(
            method=request.method,
            user_agent=_user_agent(request),
            ip=_ip(request),
            key=clicked.key,
            url=clicked.url,
            sent_at=clicked.sent_at,
        )
        await record(Lifecycle.CLICKED, clicked.key, request, verdict, url=clicked.url)
        return RedirectResponse(clicked.url, status_code=302, headers=_NO_STORE)

    # HEAD too, answered alike (and recorded as a machine's); not a second documented operation.
    router.add_api_route("/o/{token}", pixel, methods=["HEAD"], include_in_schema=False)
    router.add_api_route("/c/{token}", click, methods=["HEAD"], include_in_schema=False)
    return router


def engagement_facts(ip: str, user_agent: str, verdict: Verdict, **more: Any) -> dict[str, Any]:
    """What an `Email Opened` or `Email Clicked` says of who did it, whoever saw it happen
    (these endpoints, or an ESP reporting its own by webhook)."""
    facts: dict[str, Any] = {
        "ip": ip,
        "user_agent": user_agent[:_MAX_USER_AGENT],
        "machine": verdict.machine,
        **more,
    }
    if verdict.machine:
        facts["rule"], facts["reason"] = verdict.rule, verdict.reason
    return facts


def count_engagement(metrics: Metrics, event: Event) -> None:
    """An `Email Opened` or `Email Clicked` recorded (a machine's apart)."""
    figure = {Lifecycle.OPENED: "opened", Lifecycle.CLICKED: "clicked"}.get(event.event or "")
    if figure is None:
        return
    if event.properties.get("machine"):
        figure = f"machine_{figure}"
    metrics.count_email(figure)


def _user_agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:_MAX_USER_AGENT]


def _ip(request: Request) -> str:
    return request.client.host if request.client else ""


def _not_found(request: Request, reason: str) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(_NOT_FOUND_PAGE, status_code=404, headers=_NO_STORE)
    return JSONResponse(
        {"error": f"not a link of this project: {reason}", "where": "token"},
        status_code=404,
        headers=_NO_STORE,
    )
