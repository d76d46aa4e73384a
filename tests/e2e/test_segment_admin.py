"""The segments admin API end to end: member counts follow entries, exits by time and
merges; a definition is checked by the same rules as a file, with a pointer into the JSON."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project

SEGMENTS = {
    "pro": "conditions: {trait: plan, eq: pro}\n",
    "browsing": "conditions: {performed: Product Viewed, within: 2s}\n",
}


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port, segments=SEGMENTS)


async def counts(server: Server) -> dict[str, int]:
    listed = (await server.admin.get("/admin/segments")).json()["segments"]
    return {s["id"]: s["members"] for s in listed}


async def until_counts(server: Server, want: dict[str, int]) -> None:
    async with asyncio.timeout(10):
        while await counts(server) != want:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_member_counts_follow_entries_exits_and_merges(server: Server) -> None:
    for user in ("a", "b"):
        await server.send("identify", {"userId": user, "traits": {"plan": "pro"}})
    await server.send("track", {"anonymousId": "anon", "event": "Product Viewed"})
    await server.send("track", {"userId": "a", "event": "Product Viewed"})
    await until_counts(server, {"browsing": 2, "pro": 2})
    # The anonymous viewer signs in as b: two members become one.
    await server.send("identify", {"userId": "b", "anonymousId": "anon"})
    await until_counts(server, {"browsing": 2, "pro": 2})
    # The window passes with no event: both leave.
    await until_counts(server, {"browsing": 0, "pro": 2})
    one = (await server.admin.get("/admin/segments/pro")).json()
    assert (one["id"], one["members"]) == ("pro", 2)
    missing = await server.admin.get("/admin/segments/nope")
    assert missing.status_code == 404 and "browsing, pro" in missing.json()["error"]


async def test_a_definition_is_checked_as_a_file_would_be(server: Server) -> None:
    good = {
        "id": "pro_browsers",
        "conditions": {"all": [{"segment": "pro"}, {"performed": "Product Viewed"}]},
    }
    r = await server.admin.post("/admin/segments/check", json=good)
    assert r.status_code == 200, r.text
    assert (r.json()["ok"], r.json()["refers_to"]) == (True, ["pro"])
    bad = [
        (
            {"id": "x", "conditions": {"trait": "plan", "eqq": "pro"}},
            "/conditions/eqq",
            "did you mean 'eq'?",
        ),
        ({"id": "x", "conditions": {"segment": "nope"}}, "/conditions", "no segment named"),
        ({"id": "pro", "conditions": {"segment": "pro"}}, "/conditions", "in a cycle"),
        ({"id": "x y", "conditions": {"segment": "pro"}}, "/", "may hold only letters"),
    ]
    for body, where, reason in bad:
        r = await server.admin.post("/admin/segments/check", json=body)
        assert r.status_code == 200, body
        verdict = r.json()
        assert not verdict["ok"] and verdict["where"] == where, verdict
        assert reason in verdict["error"], verdict
    # Not a definition at all: the request itself is wrong.
    for body in (["not", "an", "object"], {"conditions": {}}, {"id": "x", "extra": 1}):
        r = await server.admin.post("/admin/segments/check", json=body)
        assert r.status_code == 400, body
