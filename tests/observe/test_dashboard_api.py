"""The dashboard over HTTP on a real embedded server: the login form and its session cookie
(its flags, a bad key, a write key, a forged, expired or revoked session, guesses slowed
down), the page and its
JSON closed without one, the security headers, the static files, the live figures, and the
message search (by contact id, address or Message-ID) with its bad input."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mailpulse.observe.dashboard_session import COOKIE, PURPOSE, DashboardSessions
from tests.e2e.conftest import ADMIN_KEY, Server, embedded_server

CLOSED = ("/admin/dashboard/live", "/admin/messages?q=u-1", "/admin/messages/some:key")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with embedded_server(tmp_path) as s:
        yield s


async def make_key(server: Server, scope: str) -> dict:
    r = await server.admin.post("/admin/keys", json={"scope": scope})
    assert r.status_code == 201, r.text
    return r.json()


async def sign_in(c: httpx.AsyncClient, key: str) -> httpx.Response:
    return await c.post("/dashboard/login", data={"key": key})


async def test_no_session_no_data(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base) as c:
        r = await c.get("/dashboard")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
        assert "Cache-Control" in r.headers
        for path in CLOSED:
            r = await c.get(path)
            assert r.status_code == 401 and "Bearer" in r.json()["error"], path
        for cookie in ("garbage", "a.b", ""):
            c.cookies.set(COOKIE, cookie)
            r = await c.get("/admin/dashboard/live")
            assert r.status_code == 401, cookie
            assert (await c.get("/dashboard")).status_code == 303
        # A cookie never opens anything but reads.
        r = await c.post("/admin/keys", json={"scope": "read"})
        assert r.status_code == 401


async def test_login_gives_a_strict_httponly_cookie_that_opens_page_and_json(
    server: Server,
) -> None:
    async with httpx.AsyncClient(base_url=server.base) as c:
        form = await c.get("/dashboard/login")
        assert form.status_code == 200 and 'name="key"' in form.text
        assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
        r = await sign_in(c, ADMIN_KEY)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"
        flags = r.headers["set-cookie"].lower()
        assert "httponly" in flags and "samesite=strict" in flags and "max-age=" in flags
        assert ADMIN_KEY not in r.headers["set-cookie"]  # the key's digest, signed, not the key

        page = await c.get("/dashboard")
        assert page.status_code == 200
        headers = page.headers
        assert headers["x-frame-options"] == "DENY"
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        # No inline script and nothing fetched from elsewhere: the page works offline.
        assert "<script>" not in page.text and "//" not in page.text.replace("<!doctype", "")
        live = await c.get("/admin/dashboard/live", params={"seconds": 60})
        assert live.status_code == 200, live.text
        body = live.json()
        assert set(body["charts"]) >= {"throughput", "latency", "stages", "queues", "cpu", "memory"}
        assert set(body["totals"]) >= {"events", "sent", "bounced", "deferred", "errors"}
        assert body["t"], "the sampler takes a snapshot every second from the start"
        newer = await c.get("/admin/dashboard/live", params={"since": body["t"][-1]})
        assert all(t > body["t"][-1] for t in newer.json()["t"])
        r = await c.get("/admin/dashboard/live", params={"since": "yesterday"})
        assert r.status_code == 400 and r.json()["where"] == "query.since"

        r = await c.post("/dashboard/logout")
        assert r.status_code == 303 and COOKIE in r.headers["set-cookie"]
        assert (await c.get("/admin/dashboard/live")).status_code == 401


async def test_bad_keys_get_the_login_form_with_a_reason(server: Server) -> None:
    writer = await make_key(server, "write")
    async with httpx.AsyncClient(base_url=server.base) as c:
        for key, said in (
            ("", "enter an admin key"),
            ("mpk_not-a-key", "unknown key"),
            (writer["key"], "scope read or admin"),
        ):
            r = await sign_in(c, key)
            assert r.status_code == 401 and said in r.text, key
            assert COOKIE not in r.headers.get("set-cookie", "")
        # Posted from another site's page: refused (login CSRF).
        r = await c.post(
            "/dashboard/login", data={"key": ADMIN_KEY}, headers={"Origin": "https://evil.test"}
        )
        assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")
        r = await c.post("/dashboard/login", content=b"\xff" * 5000)
        assert r.status_code == 413


async def test_guessing_keys_at_the_login_form_is_slowed_down(server: Server) -> None:
    """Ten tries at once per client address; then even the right key waits its turn, told
    when to come back, while the form itself still loads."""
    async with httpx.AsyncClient(base_url=server.base) as c:
        for n in range(10):
            r = await sign_in(c, f"mpk_guess-{n}")
            assert r.status_code == 401, n
        r = await sign_in(c, ADMIN_KEY)
        assert r.status_code == 429 and "too many sign-ins" in r.text
        assert 1 <= int(r.headers["Retry-After"]) <= 6
        assert COOKIE not in r.headers.get("set-cookie", "")
        assert (await c.get("/dashboard/login")).status_code == 200
        # The admin API's own keys are not behind this.
        assert (await server.admin.get("/admin/campaigns")).status_code == 200


async def test_signing_in_with_the_right_key_is_not_counted_as_a_guess(server: Server) -> None:
    """A team behind one address signs in as often as it likes; its wrong tries still count."""
    async with httpx.AsyncClient(base_url=server.base) as c:
        for n in range(15):
            assert (await sign_in(c, ADMIN_KEY)).status_code == 303, n
        for n in range(10):
            assert (await sign_in(c, f"mpk_guess-{n}")).status_code == 401, n
        assert (await sign_in(c, ADMIN_KEY)).status_code == 429


async def test_a_revoked_keys_session_ends(server: Server) -> None:
    reader = await make_key(server, "read")
    async with httpx.AsyncClient(base_url=server.base) as c:
        assert (await sign_in(c, reader["key"])).status_code == 303
        assert (await c.get("/admin/dashboard/live")).status_code == 200
        assert (await c.get("/admin/campaigns")).status_code == 200  # any read of /admin
        await server.admin.delete(f"/admin/keys/{reader['id']}")
        r = await c.get("/admin/dashboard/live")
        assert r.status_code == 401 and "was revoked" in r.json()["error"]
        assert (await c.get("/dashboard")).status_code == 303


async def test_forged_and_expired_sessions_are_refused(server: Server) -> None:
    pipeline = server.pipeline
    later = DashboardSessions(pipeline.tokens, pipeline.keys, clock=lambda: time.time() - 9 * 3600)
    expired, _ = later.open(ADMIN_KEY)
    # Signed by us, but for another purpose, or of another shape.
    other = pipeline.tokens.sign("unsubscribe", ["x", 1])
    shapeless = pipeline.tokens.sign(PURPOSE, {"d": "x"})
    async with httpx.AsyncClient(base_url=server.base) as c:
        for cookie, said in (
            (expired, "expired"),
            (other, "not valid"),
            (shapeless, "not valid"),
            (expired[:-2] + "AA", "not valid"),
        ):
            c.cookies.set(COOKIE, cookie)
            r = await c.get("/admin/dashboard/live")
            assert r.status_code == 401 and said in r.json()["error"], cookie


async def test_static_files_are_served_and_nothing_else(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base) as c:
        for name, kind in (
            ("dashboard.js", "text/javascript"),
            ("uPlot.iife.min.js", "text/javascript"),
            ("uPlot.min.css", "text/css"),
            ("uPlot.LICENSE.txt", "text/plain"),
        ):
            r = await c.get(f"/dashboard/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
            assert r.headers["x-content-type-options"] == "nosniff"
        for name in ("login.html", "..%2Fdashboard_live.py", "nope.js"):
            r = await c.get(f"/dashboard/static/{name}")
            assert r.status_code == 404, name


async def test_message_search_and_its_bad_input(server: Server) -> None:
    r = await server.send("identify", {"userId": "u-1", "traits": {"email": "ann@example.com"}})
    assert r.status_code == 200
    await server.send("track", {"userId": "u-1", "event": "Signed Up"})
    await server.wait_event("u-1", "Email Sent")
    found = (await server.admin.get("/admin/messages", params={"q": "u-1"})).json()
    assert found["found"] == "contact"
    [message] = found["messages"]
    assert message["status"] == "sent" and message["email"] == "ann@example.com"

    by_id = await server.admin.get("/admin/messages", params={"q": message["message_id"]})
    assert by_id.json()["found"] == "message"
    bare = message["message_id"].strip("<>")
    assert (await server.admin.get("/admin/messages", params={"q": bare})).json()[
        "messages"
    ] == by_id.json()["messages"]

    by_address = await server.admin.get("/admin/messages", params={"q": "ANN@example.com"})
    assert by_address.json()["found"] == "address"
    assert by_address.json()["messages"] == found["messages"]

    life = await server.admin.get(f"/admin/messages/{message['key']}")
    said = [e["event"] for e in life.json()["events"]]
    assert said[:2] == ["Email Queued", "Email Sent"], said
    assert all("key" not in e["details"] for e in life.json()["events"])

    for q, status, said in (
        ("   ", 422, "type a contact id"),
        ("u-1\x00", 422, "control characters"),
        ("nobody", 404, "no contact is known"),
        ("<nope@shop.test>", 404, "no message has the Message-ID"),
        ("nobody@example.com", 404, "or went to it"),
    ):
        r = await server.admin.get("/admin/messages", params={"q": q})
        assert r.status_code == status and said in r.json()["error"], q
        assert r.json()["where"] == "q"
    for params, said in (({}, "required"), ({"q": ""}, "at least 1"), ({"q": "x" * 999}, "998")):
        r = await server.admin.get("/admin/messages", params=params)
        assert r.status_code == 400 and said in r.json()["error"], params
        assert r.json()["where"] == "query.q"
    r = await server.admin.get("/admin/messages/campaign:none:u-9")
    assert r.status_code == 404 and r.json()["where"] == "key"
    # A NUL never reaches the store (PostgreSQL would refuse it with an error).
    r = await server.admin.get("/admin/messages/campaign:none:u%00-9")
    assert r.status_code == 422 and r.json()["where"] == "key"
    r = await server.admin.get("/admin/dashboard/live", params={"seconds": 0})
    assert r.status_code == 400 and r.json()["where"] == "query.seconds"
