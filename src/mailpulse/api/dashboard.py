"""The dashboard: a page for people, behind the admin key, and the JSON it reads.

    GET  /dashboard                 the page, signed in; else a redirect to the login form
    GET  /dashboard/login           the login form: a key of scope read or admin
    POST /dashboard/login           key=<key>: a session cookie (see observe.dashboard_session);
                                    ten tries at once per client address, then one every 6 s
    POST /dashboard/logout          the cookie cleared
    GET  /dashboard/static/<file>   its script, styles and the vendored chart library (uPlot)
    GET  /admin/dashboard/live      the charts' figures over the last `seconds`
    GET  /admin/messages?q=         messages by contact id, address or Message-ID
    GET  /admin/messages/{key}      one message and its timeline from the log

The JSON lives under /admin, behind the admin gate, which takes the session cookie on reads
as well as `Authorization: Bearer`. The page loads no script but its own files (no inline
script, no CDN: it works offline) under a Content-Security-Policy that says so.
"""

from __future__ import annotations

import html
import math
import time
from importlib.resources import files
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailpulse.api.auth import require_admin
from mailpulse.api.models import ERRORS
from mailpulse.api.public_limits import ClientBuckets, client_of
from mailpulse.feedback.pages import read_form
from mailpulse.observe.dashboard_live import LATENCY, bucket_bounds, live_figures
from mailpulse.observe.dashboard_messages import (
    MAX_QUERY,
    SearchError,
    find_messages,
    message_out,
    timeline,
)
from mailpulse.observe.dashboard_session import (
    COOKIE,
    LIFETIME,
    DashboardSessions,
    SessionRefused,
)
from mailpulse.project import PublicLimit
from mailpulse.runtime.pipeline import Pipeline

_STATIC = files("mailpulse.observe").joinpath("static")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}
SERVED = frozenset(
    ("dashboard.js", "dashboard.css", "uPlot.iife.min.js", "uPlot.min.css", "uPlot.LICENSE.txt")
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it a browser posts the login form with `Origin: null`.
    "Referrer-Policy": "same-origin",
}
_PRIVATE = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
_LOGIN = "/dashboard/login"


def _page(name: str) -> str:
    return _STATIC.joinpath(name).read_text(encoding="utf-8")


def _json(payload: Any, status: int = 200) -> Response:
    # orjson writes NaN and infinities as null, which a chart draws as a gap.
    return Response(
        orjson.dumps(payload), status_code=status, media_type="application/json", headers=_PRIVATE
    )


def _refused(error: SearchError) -> Response:
    return _json({"error": error.error, "where": error.where}, error.status)


def _login_page(message: str = "", status: int = 200) -> HTMLResponse:
    shown = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    body = _page("login.html").replace("<!--message-->", shown)
    return HTMLResponse(body, status_code=status, headers=_PRIVATE)


def _same_origin(request: Request) -> bool:
    """A form posted from our own page: a browser names the page's origin on a POST."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    host = request.headers.get("host", "")
    return origin.partition("://")[2] == host


# Guessing keys at the login form: ten tries at once, then one every six seconds, per client
# address (an IPv6 /64 counting as one, as for the public pages). A sign-in with the right key
# is no guess: its try is given back, so a team behind one address is never locked out.
LOGIN_TRIES = PublicLimit(rate=1 / 6, burst=10)


def dashboard_pages_router(sessions: DashboardSessions) -> APIRouter:
    router = APIRouter(prefix="/dashboard", include_in_schema=False)
    tries = ClientBuckets(LOGIN_TRIES)

    @router.get("")
    async def dashboard(request: Request) -> Response:
        try:
            sessions.principal(request.cookies.get(COOKIE))
        except SessionRefused:
            return RedirectResponse(_LOGIN, status_code=303, headers=_PRIVATE)
        return HTMLResponse(_page("dashboard.html"), headers=_PRIVATE)

    @router.get("/login")
    async def login_form() -> HTMLResponse:
        return _login_page()

    @router.post("/login")
    async def login(request: Request) -> Response:
        client = client_of(request.scope)
        wait = math.ceil(tries.take(client))
        if wait:
            page = _login_page(f"too many sign-ins from this address: try again in {wait} s", 429)
            page.headers["Retry-After"] = str(wait)
            return page
        if not _same_origin(request):
            return _login_page("sign in from this server's own login page", 403)
        form = await read_form(request)
        if isinstance(form, Response):
            return _login_page("the form could not be read", form.status_code)
        try:
            cookie, _ = sessions.open(form.get("key", ""))
        except SessionRefused as refusal:
            return _login_page(str(refusal), 401)
        tries.give_back(client)
        answer = RedirectResponse("/dashboard", status_code=303, headers=_PRIVATE)
        answer.set_cookie(
            COOKIE,
            cookie,
            max_age=int(LIFETIME),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return answer

    @router.post("/logout")
    async def logout() -> Response:
        answer = RedirectResponse(_LOGIN, status_code=303, headers=_PRIVATE)
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in SERVED:
            return _json({"error": f"no file {name!r}", "where": "path"}, 404)
        suffix = name[name.rfind(".") :]
        return Response(
            _STATIC.joinpath(name).read_bytes(),
            media_type=_TYPES[suffix],
            headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"},
        )

    return router


def dashboard_admin_router(pipeline: Pipeline) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])
    bounds = bucket_bounds(pipeline.metrics.registry, LATENCY)
    found = {
        **ERRORS,
        404: ERRORS[400] | {"description": "No such message, contact or address."},
        422: ERRORS[400] | {"description": "A search that names nothing (blank, control)."},
    }

    @router.get("/dashboard/live", responses=ERRORS)
    async def live(
        seconds: float = Query(300.0, gt=0, le=900), since: float | None = None
    ) -> Response:
        """The dashboard's charts: one point per second (the metric sampler's snapshots) over
        the last `seconds`, or only those after `since` (the time of the last point the
        caller has), and the totals of the latest snapshot."""
        figures = live_figures(pipeline.sampler, bounds, seconds, since)
        return _json({"at": time.time(), **figures})

    @router.get("/messages", responses=found)
    async def search(q: str = Query(min_length=1, max_length=MAX_QUERY)) -> Response:
        """Messages of a contact (by any of its ids) or the one of a Message-ID, newest
        first."""
        try:
            found, rows = await find_messages(pipeline.state, q)
        except SearchError as error:
            return _refused(error)
        return _json({"found": found, "messages": [message_out(r) for r in rows]})

    @router.get("/messages/{key:path}", responses=found)
    async def message(key: str) -> Response:
        """One message (by its key) and what happened to it, in log order."""
        try:
            return _json(await timeline(pipeline.state, pipeline.log, key))
        except SearchError as error:
            return _refused(error)

    return router
