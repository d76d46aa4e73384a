"""Journey controls over the admin API, end to end: pause holds entries and waiting contacts,
resume lets them go on, archive ends the journey for good; each journey reports how many
entered, finished and went each way at a split."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project

JOURNEYS = {
    "nudge": """\
        trigger: {event: Nudge}
        entry: always
        steps:
          - wait: 1s
          - send: reminder
        """,
    "onboarding": """\
        trigger: {event: Signed Up}
        steps:
          - split:
              - {arm: a, weight: 1, steps: [{send: welcome}]}
              - {arm: b, weight: 1}
        """,
}
TAKES_EFFECT = 0.7  # the fold reads the controls every 0.5 s


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port, journeys=JOURNEYS)


async def person(server: Server, user: str, event: str) -> None:
    traits = {"email": f"{user}@example.com", "first_name": user}
    assert (await server.send("identify", {"userId": user, "traits": traits})).status_code == 200
    body = {"userId": user, "event": event, "properties": {"name": "Tent"}}
    assert (await server.send("track", body)).status_code == 200


async def control(server: Server, journey: str, action: str, status: int = 200) -> dict:
    response = await server.admin.post(f"/admin/journeys/{journey}/{action}")
    assert response.status_code == status, response.text
    await asyncio.sleep(TAKES_EFFECT)
    return response.json()


def recipients(sink: Sink) -> list[str]:
    return sorted(r.rcpt.split("@")[0] for r in sink.received)


async def test_pause_holds_resume_releases_archive_ends(server: Server, sink: Sink) -> None:
    await person(server, "waiting", "Nudge")  # enters, and waits 1 s
    assert (await control(server, "nudge", "pause"))["status"] == "paused"
    await person(server, "turned-away", "Nudge")  # paused: does not enter
    await asyncio.sleep(1.5)
    assert recipients(sink) == []  # the waiting contact's timer waits too
    await control(server, "nudge", "resume")
    await sink.wait_until(lambda: len(sink.received) >= 1, within=5)
    await person(server, "after", "Nudge")
    await sink.wait_until(lambda: len(sink.received) >= 2, within=5)
    await asyncio.sleep(0.5)
    assert recipients(sink) == ["after", "waiting"]

    await person(server, "left", "Nudge")  # waiting when the journey is archived
    await control(server, "nudge", "archive")
    await person(server, "too-late", "Nudge")
    await asyncio.sleep(1.5)
    assert recipients(sink) == ["after", "waiting"]
    refused = await server.admin.post("/admin/journeys/nudge/resume")
    assert refused.status_code == 409 and "stays so" in refused.json()["error"]

    report = (await server.admin.get("/admin/journeys/nudge")).json()
    assert report["status"] == "archived" and report["active"] == 0
    [version] = report["versions"]
    assert (version["entered"], version["completed"], version["exited"]) == (3, 2, 1)


async def test_a_split_reports_how_many_took_each_arm(server: Server, sink: Sink) -> None:
    users = [f"u{n}" for n in range(40)]
    await asyncio.gather(*(person(server, user, "Signed Up") for user in users))

    async def finished() -> bool:
        report = (await server.admin.get("/admin/journeys/onboarding")).json()
        return bool(report["versions"]) and report["versions"][0]["completed"] == len(users)

    async with asyncio.timeout(10):
        while not await finished():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    [version] = (await server.admin.get("/admin/journeys/onboarding")).json()["versions"]
    arms = version["arms"]["s0"]
    assert arms["a"] + arms["b"] == len(users) == version["entered"]
    await sink.wait_until(lambda: len(sink.received) >= arms["a"], within=10)
    assert len(sink.received) == arms["a"]  # arm b is the control group: no mail
    listed = (await server.admin.get("/admin/journeys")).json()["journeys"]
    assert [(j["id"], j["status"]) for j in listed] == [("nudge", "live"), ("onboarding", "live")]


async def test_unknown_journeys_are_named(server: Server) -> None:
    response = await server.admin.post("/admin/journeys/nope/pause")
    assert response.status_code == 404
    assert "no journey 'nope'" in response.json()["error"]
    assert "nudge, onboarding" in response.json()["error"]
