"""Segments end to end, over HTTP and SMTP: a contact enters a segment on the event that
makes it so, the journey on that segment starts at once and branches on the profile."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project

SEGMENTS = {
    "engaged": """\
        name: Engaged
        conditions:
          performed: Product Viewed
          at_least: 2
          within: 1h
        """,
}
JOURNEYS = {
    "engaged_offer": """\
        trigger: {segment_entered: engaged}
        entry: once
        steps:
          - branch: {trait: plan, eq: pro}
            then:
              - send: welcome
            else:
              - send: reminder
        """,
}


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port, journeys=JOURNEYS, segments=SEGMENTS)


async def test_entering_a_segment_starts_its_journey_which_branches_on_the_profile(
    server: Server, sink: Sink
) -> None:
    plans = {"ann": "pro", "bob": "free", "cid": "pro"}
    for user, plan in plans.items():
        traits = {"email": f"{user}@example.com", "first_name": user, "plan": plan}
        assert (
            await server.send("identify", {"userId": user, "traits": traits})
        ).status_code == 200
    viewed = {"event": "Product Viewed", "properties": {"name": "Tent"}}
    for user in ("ann", "bob", "ann", "bob", "cid"):  # cid views once: not engaged
        assert (await server.send("track", {"userId": user, **viewed})).status_code == 200
    await sink.wait_until(lambda: len(sink.received) >= 2, within=10)
    await asyncio.sleep(0.5)  # anything else would have come by now
    got = sorted((r.rcpt, r.message["Subject"]) for r in sink.received)
    assert [rcpt for rcpt, _ in got] == ["ann@example.com", "bob@example.com"]
    assert "Welcome" in got[0][1] and "cart" in got[1][1]
    # The contact's history shows the membership event the journey started on.
    history = (await server.admin.get("/admin/contacts/ann/events")).json()["events"]
    entered = [e for e in history if e.get("event") == "Segment Entered"]
    assert [e["properties"]["segment"] for e in entered] == ["engaged"]
