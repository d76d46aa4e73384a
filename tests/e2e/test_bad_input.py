"""Bad input gets a clear 4xx with a JSON reason, and nothing is stored."""

from __future__ import annotations

import gzip

import httpx
import pytest

from tests.e2e.conftest import Server


async def _head(server: Server) -> int:
    log = server.pipeline.log
    return sum([await log.head(p) for p in range(log.partitions)])


@pytest.mark.parametrize(
    ("call", "body", "status", "reason"),
    [
        ("track", b"{not json", 400, "JSON"),
        ("track", b'{"event": "Signed Up"}', 400, "userId or anonymousId"),
        ("track", b'{"userId": "u"}', 400, "event"),
        ("identify", b'{"userId": "u", "traits": []}', 400, "traits"),
        ("alias", b'{"userId": "u"}', 400, "previousId"),
        ("track", b'{"userId": "u", "event": "x", "timestamp": "yesterday"}', 400, "timestamp"),
        (
            "batch",
            b'{"batch": [{"type": "track", "userId": "u", "event": "ok"}, '
            b'{"type": "nope", "userId": "u"}]}',
            400,
            "batch[1]",
        ),
        ("batch", b'{"batch": []}', 400, "empty"),
        ("track", b'{"userId": "u\\u0000x", "event": "Signed Up"}', 400, "NUL character"),
    ],
)
async def test_invalid_events_are_refused_and_store_nothing(
    server: Server, call: str, body: bytes, status: int, reason: str
) -> None:
    before = await _head(server)
    r = await server.client.post(
        f"/v1/{call}", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == status, r.text
    payload = r.json()
    text = f"{payload.get('where') or ''} {payload['error']}"
    assert reason.lower() in text.lower(), payload
    assert await _head(server) == before


async def test_oversized_event_and_request(server: Server) -> None:
    before = await _head(server)
    big = {"userId": "u", "event": "x", "properties": {"blob": "x" * 40_000}}
    r = await server.send("track", big)
    assert r.status_code == 400 and "32768" in r.json()["error"]
    items = [{"type": "track", "userId": "u", "event": "x", "properties": {"b": "y" * 30_000}}]
    r = await server.send("batch", {"batch": items * 20})
    assert r.status_code == 400 and "512000" in r.json()["error"]
    bomb = gzip.compress(b'{"batch": [' + b" " * 5_000_000 + b"]}")
    r = await server.client.post(
        "/v1/batch",
        content=bomb,
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert await _head(server) == before


async def test_write_key_is_required_and_checked(server: Server) -> None:
    before = await _head(server)
    body = {"userId": "u", "event": "x"}
    async with httpx.AsyncClient(base_url=server.base) as anonymous:
        r = await anonymous.post("/v1/track", json=body)
        assert r.status_code == 401 and "write key" in r.json()["error"]
        r = await anonymous.post("/v1/track", json=body, auth=("wrong-key", ""))
        assert r.status_code == 401 and r.json()["error"] == "unknown write key"
        # Segment's other way: writeKey in the body.
        r = await anonymous.post("/v1/track", json={**body, "writeKey": "test-write-key"})
        assert r.status_code == 200
    assert await _head(server) == before + 1


async def test_admin_api_needs_the_admin_key(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base) as anonymous:
        r = await anonymous.get("/admin/contacts/u")
        assert r.status_code == 401 and "Bearer" in r.json()["error"]
    r = await server.admin.get("/admin/contacts/nobody")
    assert r.status_code == 404 and "nobody" in r.json()["error"]
    r = await server.admin.get("/admin/contacts/x/events", params={"limit": 0})
    assert r.status_code == 400 and "limit" in r.json()["where"]
