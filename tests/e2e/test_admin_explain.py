"""`GET /admin/contacts/{id}/explain`: for every segment of the project, whether the contact is
in it and why, read from the segment state the fold keeps with the contact."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Deployment, Server, running_server

# A branch condition: the fold keeps it current with the segments, in the same state.
BRANCHING = """\
trigger:
  event: Product Viewed
steps:
  - branch: {seen: first, within: 1d}
    then:
      - send: welcome
"""
SEGMENTS = {
    "pro": "name: Pro plan\nconditions: {trait: plan, eq: pro}\n",
    "browsing": "conditions: {performed: Product Viewed, within: 1h}\n",
    "quiet": "conditions: {all: [{trait: plan, eq: pro}, {not: {subscribed: newsletter}}]}\n",
}


def write_segments(project_dir: Path, segments: dict[str, str]) -> None:
    (project_dir / "segments").mkdir(exist_ok=True)
    for segment_id, text in segments.items():
        (project_dir / "segments" / f"{segment_id}.yaml").write_text(text, encoding="utf-8")


async def wait_entered(server: Server, contact: str, segments: set[str]) -> list[dict]:
    """The contact's history once the fold has put it in every one of `segments`."""
    async with asyncio.timeout(10):
        while True:
            with contextlib.suppress(httpx.HTTPStatusError):  # 404 until the fold made it
                events = await server.events(contact)
                entered = {
                    e["properties"]["segment"] for e in events if e["event"] == "Segment Entered"
                }
                if segments <= entered:
                    return events
            await asyncio.sleep(0.05)


async def explain(server: Server, contact: str) -> dict[str, Any]:
    r = await server.admin.get(f"/admin/contacts/{contact}/explain")
    r.raise_for_status()
    return r.json()


async def test_every_segment_says_why(project_dir: Path, deployment: Deployment) -> None:
    write_segments(project_dir, SEGMENTS)
    (project_dir / "journeys" / "browse.yaml").write_text(BRANCHING, encoding="utf-8")
    async with running_server(project_dir, deployment) as server:
        await server.send(
            "identify", {"userId": "u-x", "anonymousId": "a-x", "traits": {"plan": "pro"}}
        )
        await server.send("track", {"anonymousId": "a-x", "event": "Product Viewed"})
        events = await wait_entered(server, "u-x", set(SEGMENTS))
        body = await explain(server, "a-x")  # any identity names the contact

    viewed = next(e for e in events if e["event"] == "Product Viewed")["received_at"]
    assert (body["contact_id"], body["up_to_date"], body["note"]) == ("u-x", True, None)
    browsing, pro, quiet = body["segments"]
    assert pro == {
        "segment": "pro",
        "name": "Pro plan",
        "member": True,
        "condition": {
            "condition": 'trait plan eq "pro"',
            "holds": True,
            "reason": 'plan is "pro"',
            "children": [],
        },
        "member_since": pro["member_since"],
        "next_change_at": None,
    }
    assert browsing["member"] and browsing["member_since"] == pytest.approx(viewed, abs=1)
    assert browsing["next_change_at"] == viewed + 3600  # the view leaves the window
    assert (
        browsing["condition"]["condition"] == "performed Product Viewed at least 1 time within 1h"
    )
    assert browsing["condition"]["reason"].startswith("1 time or more in the window;")
    assert [(node["condition"], node["holds"]) for node in quiet["condition"]["children"]] == [
        ('trait plan eq "pro"', True),
        ("not", True),
    ]
    assert quiet["condition"]["children"][1]["children"][0]["reason"] == (
        "no Topic Subscribed on record"
    )


async def test_changed_segments_are_computed_from_the_history_at_start(
    project_dir: Path, deployment: Deployment
) -> None:
    write_segments(project_dir, SEGMENTS)
    async with running_server(project_dir, deployment) as server:
        await server.send("identify", {"userId": "u-s", "traits": {"plan": "free"}})
        await server.send("track", {"userId": "u-s", "event": "Product Viewed"})
        await wait_entered(server, "u-s", {"browsing"})
    write_segments(
        project_dir,
        {
            "free": "conditions: {trait: plan, eq: free}\n",
            "viewers": "conditions: {performed: Product Viewed}\n",
        },
    )
    async with running_server(project_dir, deployment) as server:
        async with asyncio.timeout(10):  # the fold computes them before it folds on
            while not (body := await explain(server, "u-s"))["up_to_date"]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        events = await server.events("u-s")
    members = {s["segment"]: s["member_since"] for s in body["segments"] if s["member"]}
    # Both from the stored history: the trait, and the event seen before the change.
    assert {"free", "viewers"} <= set(members) and None not in members.values()
    # Silently: a backfill starts no journey for everyone already in a new segment.
    entered = [e["properties"]["segment"] for e in events if e.get("event") == "Segment Entered"]
    assert entered == ["browsing"]


async def test_an_unknown_contact_is_404_and_no_segments_no_explanations(
    server: Server,
) -> None:
    r = await server.admin.get("/admin/contacts/nobody/explain")
    assert r.status_code == 404
    assert r.json() == {"error": "no contact known as 'nobody'", "where": None}
    await server.send("identify", {"userId": "u-n", "traits": {"plan": "pro"}})
    async with asyncio.timeout(10):  # until the fold has made the contact
        while True:
            if (await server.admin.get("/admin/contacts/u-n")).status_code == 200:
                break
            await asyncio.sleep(0.05)
    body = await explain(server, "u-n")
    assert (body["segments"], body["up_to_date"], body["note"]) == ([], True, None)
