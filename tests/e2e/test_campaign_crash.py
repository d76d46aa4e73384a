"""kill -9 in the middle of a campaign, start again: it goes on from where it stopped, every
recipient gets the campaign, and the only doubles are SMTP transactions in flight at the
kill."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN_KEY, WRITE_KEY, Sink, free_port, write_project
from tests.e2e.test_crash import (
    assert_doubles_are_resends,
    assert_no_process_for,
    start_server,
    stop_server,
    wait_healthy,
)

RECIPIENTS = 600


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    root = write_project(tmp_path / "project", sink.port, journeys={})
    toml = root / "mailpulse.toml"
    # Small pages, little read ahead: the kill lands while the audience is still being read.
    toml.write_text(toml.read_text() + "\n[campaigns]\npage = 50\nahead = 40\n")
    return root


async def campaign_state(admin: httpx.AsyncClient) -> dict:
    return (await admin.get("/admin/campaigns/crash")).json()


def finished(state: dict) -> bool:
    return state["status"] == "sent" and state["messages"].get("sent", 0) >= RECIPIENTS


async def test_kill_9_mid_campaign_then_resume_loses_nobody(
    project_dir: Path, tmp_path: Path, sink: Sink
) -> None:
    sink.delay = 0.01  # a slow receiver: messages are in flight at the kill
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    everyone = {f"c{n}@example.com" for n in range(RECIPIENTS)}
    proc = start_server(project_dir, data, port)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        await wait_healthy(base, proc)
        async with (
            httpx.AsyncClient(base_url=base, auth=(WRITE_KEY, "")) as client,
            httpx.AsyncClient(base_url=base, headers=headers) as admin,
        ):
            batch = [
                {"type": "identify", "userId": f"c{n}", "traits": {"email": f"c{n}@example.com"}}
                for n in range(RECIPIENTS)
            ]
            assert (await client.post("/v1/batch", json={"batch": batch})).status_code == 200
            async with asyncio.timeout(30):
                while (await admin.get(f"/admin/contacts/c{RECIPIENTS - 1}")).status_code != 200:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            body = {"id": "crash", "template": "welcome", "audience": "all"}
            assert (await admin.post("/admin/campaigns", json=body)).status_code == 201
            await sink.wait_until(lambda: len(sink.received) >= 120, within=60)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        sent_before_kill = len(sink.received)
        assert sent_before_kill < RECIPIENTS, "the kill must land mid-campaign"

        proc = start_server(project_dir, data, port)
        await wait_healthy(base, proc)
        await sink.wait_until(lambda: everyone <= {r.rcpt for r in sink.received}, within=120)
        async with httpx.AsyncClient(base_url=base, headers=headers) as admin:
            async with asyncio.timeout(30):
                while not finished(state := await campaign_state(admin)):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # let any late double show itself
    finally:
        stop_server(proc)
    await asyncio.to_thread(assert_no_process_for, project_dir)

    assert {r.rcpt for r in sink.received} == everyone
    assert (state["status"], state["queued"], state["messages"]) == (
        "sent",
        RECIPIENTS,
        {"sent": RECIPIENTS},
    )
    doubles = assert_doubles_are_resends(sink)
    print(f"\ncampaign crash: {sent_before_kill} sent before kill -9, {doubles} doubles")
