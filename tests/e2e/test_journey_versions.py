"""Editing a journey: an edit is a new version and contacts already in it finish on theirs;
a bad edit is refused with its file and line, and the running journey goes on untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpulse.errors import ProjectError
from mailpulse.project import load_project
from tests.e2e.conftest import Deployment, Sink, running_server


async def test_contacts_finish_on_the_version_they_entered(
    project_dir: Path, deployment: Deployment, sink: Sink
) -> None:
    cart = project_dir / "journeys" / "cart.yaml"
    async with running_server(project_dir, deployment) as server:
        await server.send("identify", {"userId": "old", "traits": {"email": "old@example.com"}})
        body = {"userId": "old", "event": "Product Added", "properties": {"name": "Lamp"}}
        assert (await server.send("track", body)).status_code == 200
        await server.wait_event("old", "Product Added")
    # While "old" waits: a bad edit (a template that does not exist) is refused whole...
    good = cart.read_text()
    cart.write_text(good.replace("send: reminder", "send: remindr"))
    with pytest.raises(ProjectError) as caught:
        load_project(project_dir)
    assert "cart.yaml:" in str(caught.value) and "did you mean 'reminder'" in str(caught.value)
    # ...and a good one is a new version: new entries take it, "old" finishes on its own.
    cart.write_text(good.replace("send: reminder", "send: welcome"))
    async with running_server(project_dir, deployment) as server:
        await server.send("identify", {"userId": "new", "traits": {"email": "new@example.com"}})
        body = {"userId": "new", "event": "Product Added", "properties": {"name": "Lamp"}}
        assert (await server.send("track", body)).status_code == 200
        [old] = await sink.wait_for("old@example.com", within=15)
        [new] = await sink.wait_for("new@example.com", within=15)
        versions = (await server.admin.get("/admin/journeys/cart")).json()["versions"]
    assert old.message["Subject"] == "You left Lamp in your cart"  # the version it entered
    assert new.message["Subject"].startswith("Welcome")  # the edited one
    assert len(versions) == 2 and all(v["completed"] == 1 for v in versions)
