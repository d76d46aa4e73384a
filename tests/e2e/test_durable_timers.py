"""A restart in the middle of a `wait` still sends, and not before the wait is over."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.e2e.conftest import Deployment, Sink, running_server


async def test_restart_during_wait_still_sends_on_time(
    project_dir: Path, deployment: Deployment, sink: Sink
) -> None:
    async with running_server(project_dir, deployment) as server:
        await server.send("identify", {"userId": "w", "traits": {"email": "w@example.com"}})
        entered = time.time()
        r = await server.send(
            "track", {"userId": "w", "event": "Product Added", "properties": {"name": "Lamp"}}
        )
        assert r.status_code == 200
        await server.wait_event("w", "Product Added")
    # The server is down for part of the 2 s wait.
    await asyncio.sleep(0.5)
    assert sink.received == []
    async with running_server(project_dir, deployment):
        [got] = await sink.wait_for("w@example.com", within=15)
        arrived = time.time()
    assert got.message["Subject"] == "You left Lamp in your cart"
    assert arrived - entered >= 2.0, "sent before its wait was over"


async def test_restart_keeps_profiles_and_does_not_resend(
    project_dir: Path, deployment: Deployment, sink: Sink
) -> None:
    async with running_server(project_dir, deployment) as server:
        await server.send("identify", {"userId": "r", "traits": {"email": "r@example.com"}})
        await server.send("track", {"userId": "r", "event": "Signed Up"})
        await sink.wait_for("r@example.com")
        await server.wait_event("r", "Email Sent")
    async with running_server(project_dir, deployment) as server:
        contact = (await server.admin.get("/admin/contacts/r")).json()
        assert contact["email"] == "r@example.com"
        # Welcome is `once`: a second Signed Up after the restart sends nothing more.
        await server.send("track", {"userId": "r", "event": "Signed Up"})
        await server.send("identify", {"userId": "r2", "traits": {"email": "r2@example.com"}})
        await server.send("track", {"userId": "r2", "event": "Signed Up"})
        await sink.wait_for("r2@example.com")
    assert len(sink.to("r@example.com")) == 1
