"""Scoped API keys and the audit log on a real embedded server over HTTP: keys made, used and
revoked; every refusal (no key, an unknown one, a revoked one, the wrong scope) with the
reason and the scope needed; every mutating admin route on record, refused attempts too,
without secrets or addresses; and the same through `mailpulse keys` and `mailpulse audit`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mailpulse.policy.suppression import address_hash
from tests.e2e.conftest import ADMIN_KEY, WRITE_KEY, Server, embedded_server, mailpulse_cli


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with embedded_server(tmp_path) as s:
        yield s


async def make_key(server: Server, scope: str, name: str = "") -> dict:
    r = await server.admin.post("/admin/keys", json={"scope": scope, "name": name})
    assert r.status_code == 201, r.text
    return r.json()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def audit(server: Server, **params: object) -> list[dict]:
    r = await server.admin.get("/admin/audit", params=params)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


TRACK = {"userId": "u1", "event": "Signed Up"}


async def test_keys_of_each_scope_do_what_their_scope_allows(server: Server) -> None:
    writer, reader, admin = [await make_key(server, s) for s in ("write", "read", "admin")]
    assert writer["key"].startswith(writer["prefix"]) and writer["scope"] == "write"
    async with httpx.AsyncClient(base_url=server.base) as c:
        # write: the tracking API, as Segment sends it or with writeKey in the body.
        assert (await c.post("/v1/track", json=TRACK, auth=(writer["key"], ""))).status_code == 200
        body = {**TRACK, "writeKey": writer["key"]}
        assert (await c.post("/v1/track", json=body)).status_code == 200
        r = await c.get("/admin/keys", headers=bearer(writer["key"]))
        assert r.status_code == 403
        assert "scope write" in r.json()["error"] and "scope read or admin" in r.json()["error"]

        # read: GET on /admin, nothing else.
        r = await c.get("/admin/keys", headers=bearer(reader["key"]))
        assert r.status_code == 200
        assert {k["prefix"] for k in r.json()["keys"]} == {
            writer["prefix"],
            reader["prefix"],
            admin["prefix"],
        }
        assert all("key" not in k and "digest" not in k for k in r.json()["keys"])
        r = await c.post("/admin/keys", json={"scope": "read"}, headers=bearer(reader["key"]))
        assert r.status_code == 403 and "needs scope admin" in r.json()["error"]
        assert reader["prefix"] in r.json()["error"]
        r = await c.post("/v1/track", json=TRACK, auth=(reader["key"], ""))
        assert r.status_code == 403 and "scope write or admin" in r.json()["error"]

        # admin: everything.
        r = await c.post("/admin/keys", json={"scope": "write"}, headers=bearer(admin["key"]))
        assert r.status_code == 201
        assert (await c.post("/v1/track", json=TRACK, auth=(admin["key"], ""))).status_code == 200

        # The project's keys work as they did.
        assert (await c.post("/v1/track", json=TRACK, auth=(WRITE_KEY, ""))).status_code == 200
        assert (await c.get("/admin/keys", headers=bearer(ADMIN_KEY))).status_code == 200


async def test_unknown_and_revoked_keys_are_refused(server: Server) -> None:
    reader = await make_key(server, "read")
    writer = await make_key(server, "write")
    async with httpx.AsyncClient(base_url=server.base) as c:
        for headers in ({}, bearer("mpk_not-a-key"), {"Authorization": f"Basic {ADMIN_KEY}"}):
            r = await c.get("/admin/keys", headers=headers)
            assert r.status_code == 401 and "Bearer" in r.json()["error"]
        r = await c.post("/v1/track", json=TRACK, auth=("mpk_not-a-key", ""))
        assert r.status_code == 401 and r.json()["error"] == "unknown write key"

        for made in (reader, writer):
            r = await server.admin.delete(f"/admin/keys/{made['id']}")
            assert r.status_code == 200 and r.json()["revoked_at"] is not None
        r = await c.get("/admin/keys", headers=bearer(reader["key"]))
        assert r.status_code == 401
        assert r.json()["error"] == f"key {reader['prefix']} was revoked"
        r = await c.post("/v1/track", json=TRACK, auth=(writer["key"], ""))
        assert r.status_code == 401 and "was revoked" in r.json()["error"]

    # Revoked again: as it stands. Unknown: 404. A scope that is none: 400.
    again = await server.admin.delete(f"/admin/keys/{reader['id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] is not None
    r = await server.admin.delete("/admin/keys/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    for bad in ({"scope": "root"}, {"scope": "read", "extra": 1}, {"scope": "read", "name": "a\n"}):
        r = await server.admin.post("/admin/keys", json=bad)
        assert r.status_code == 400, bad
    listed = (await server.admin.get("/admin/keys")).json()["keys"]
    assert len(listed) == 2


async def test_admin_actions_are_kept_with_who_what_when_and_where(server: Server) -> None:
    before = time.time()
    made = await make_key(server, "read", "grafana")
    await server.admin.delete(f"/admin/keys/{made['id']}")
    await server.admin.get("/admin/keys")  # a read: not kept
    async with httpx.AsyncClient(base_url=server.base) as c:
        other = await make_key(server, "read")
        r = await c.post(
            "/admin/suppressions",
            json={"address": "Ana@Example.com"},
            headers=bearer(other["key"]),
        )
        assert r.status_code == 403
        r = await c.delete("/admin/suppressions/ana@example.com", headers=bearer("wrong"))
        assert r.status_code == 401
    r = await server.admin.post("/admin/suppressions", json={"address": "ana@example.com"})
    assert r.status_code == 201

    kept = await audit(server)
    hashed = f"sha256:{address_hash('ana@example.com')}"
    assert [(e["method"], e["path"], e["outcome"]) for e in kept] == [
        ("POST", "/admin/suppressions", "done"),
        ("DELETE", f"/admin/suppressions/{hashed}", "refused"),  # refused before routing
        ("POST", "/admin/suppressions", "refused"),
        ("POST", "/admin/keys", "done"),
        ("DELETE", "/admin/keys/{key_id}", "done"),
        ("POST", "/admin/keys", "done"),
    ]
    newest, unauthenticated, wrong_scope, second, revoked, created = kept
    assert newest["actor"] == "project admin key" and newest["scope"] == "admin"
    assert newest["summary"] == "application/json body of 29 bytes: address"
    assert unauthenticated["actor"] == "unauthenticated" and unauthenticated["status"] == 401
    assert "ana@example.com" not in str(kept).lower()
    assert wrong_scope["actor"] == f"key {other['prefix']}" and wrong_scope["key_id"] == other["id"]
    assert wrong_scope["scope"] == "read" and wrong_scope["status"] == 403
    assert wrong_scope["outcome"] == "refused"
    assert created["summary"] == f"made a read key {made['prefix']} named 'grafana'"
    assert created["target"] == {"key_id": made["id"]} and created["status"] == 201
    assert revoked["path"] == "/admin/keys/{key_id}" and revoked["target"] == {"key_id": made["id"]}
    assert revoked["summary"] == f"revoked the read key {made['prefix']}"
    assert all(e["ip"] == "127.0.0.1" and before <= e["at"] <= time.time() for e in kept)
    assert made["key"] not in str(kept) and second["summary"].startswith("made a read key")

    # Paged newest first, and by time.
    page = (await server.admin.get("/admin/audit", params={"limit": 4})).json()
    assert [e["id"] for e in page["entries"]] == [e["id"] for e in kept[:4]]
    rest = await audit(server, before=page["next"])
    assert [e["id"] for e in rest] == [e["id"] for e in kept[4:]]
    assert await audit(server, since=time.time() + 10) == []
    window = await audit(server, since=created["at"], until=revoked["at"])
    assert [e["id"] for e in window] == [created["id"]]
    r = await server.admin.get("/admin/audit", params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["where"] == "since"
    # A page mark past 64 bits is refused before any store sees it (SQLite overflowed).
    r = await server.admin.get("/admin/audit", params={"before": str(2**64)})
    assert r.status_code == 400 and r.json()["where"] == "query.before"
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created["at"] - 1))
    assert len(await audit(server, since=iso)) == len(kept)


async def test_every_mutating_admin_route_is_kept(server: Server) -> None:
    paths = (await server.admin.get("/openapi.json")).json()["paths"]
    mutating = sorted(
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/admin")
        for method in operations
        if method not in ("get", "head")
    )
    assert len(mutating) >= 15  # keys, campaigns, journeys, suppressions, catalogs, ...
    for method, path in mutating:
        # Ids nobody has, and no body: each is refused (or does nothing), and is kept.
        url = path.replace("{", "").replace("}", "-nobody")
        await server.admin.request(method, url, content=b"{}" if method != "DELETE" else None)
    kept = {(e["method"], e["path"]) for e in await audit(server, limit=1000)}
    assert set(mutating) <= kept


async def test_keys_and_audit_from_the_command_line(server: Server) -> None:
    code, out, err = await mailpulse_cli(
        server, "keys", "create", "--scope", "write", "--name", "web"
    )
    assert code == 0, err
    key = out.strip()
    assert key.startswith("mpk_") and "write key" in err
    async with httpx.AsyncClient(base_url=server.base) as c:
        assert (await c.post("/v1/track", json=TRACK, auth=(key, ""))).status_code == 200
    listed = (await server.admin.get("/admin/keys")).json()["keys"]
    [made] = listed
    code, out, err = await mailpulse_cli(server, "keys", "list")
    assert code == 0 and made["prefix"] in out and "web" in out and key not in out
    code, out, err = await mailpulse_cli(server, "keys", "revoke", made["id"])
    assert code == 0 and "revoked" in out
    code, out, err = await mailpulse_cli(server, "keys", "revoke", "nope")
    assert code == 1 and "no key 'nope'" in err
    code, out, err = await mailpulse_cli(server, "audit", "--since", "1h")
    assert code == 0, err
    assert "POST /admin/keys" in out and "DELETE /admin/keys/{key_id}" in out and "refused" in out
    code, out, err = await mailpulse_cli(server, "audit", "--since", "soon")
    assert code == 2 and "--since" in err
