"""A list end to end: `mailpulse import --list` puts a file's contacts in a list, and a
campaign to that list reaches them and nobody else; a list nobody is in, or a name that cannot
be one, is refused and changes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.conftest import Server, Sink
from tests.e2e.test_contacts_import import mailpulse_import


async def test_a_campaign_to_an_imported_list_reaches_its_members_only(
    server: Server, sink: Sink, tmp_path: Path
) -> None:
    fair = tmp_path / "fair.csv"
    fair.write_text("email,first_name\nana@example.com,Ana\nbo@example.com,Bo\n")
    code, out, err = await mailpulse_import(server, str(fair), "--list", "spring-fair")
    assert code == 0, err
    assert "2 contacts imported" in out
    r = await server.send("identify", {"userId": "cy", "traits": {"email": "cy@example.com"}})
    assert r.status_code == 200
    body = {"id": "fair-invite", "template": "welcome", "audience": {"list": "spring-fair"}}
    async with asyncio.timeout(10):
        while (r := await server.admin.post("/admin/campaigns", json=body)).status_code == 404:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # until the fold has the list's members
    assert r.status_code == 201, r.text
    assert (r.json()["list"], r.json()["audience"]) == ("spring-fair", 2)
    lists = (await server.admin.get("/admin/lists")).json()["lists"]
    assert lists == [{"id": "spring-fair", "members": 2}]
    await sink.wait_until(lambda: len(sink.received) >= 2)
    async with asyncio.timeout(10):
        while (await server.admin.get("/admin/campaigns/fair-invite")).json()["status"] != "sent":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # time enough for a message to anyone else to arrive
    assert sorted(r.rcpt for r in sink.received) == ["ana@example.com", "bo@example.com"]


async def test_a_list_that_names_nothing_is_refused(server: Server) -> None:
    body = {"id": "nobody", "template": "welcome", "audience": {"list": "spring-fiar"}}
    r = await server.admin.post("/admin/campaigns", json=body)
    assert r.status_code == 404
    assert r.json()["where"] == "/audience/list"
    assert (await server.admin.get("/admin/campaigns/nobody")).status_code == 404
    r = await server.admin.post(
        "/admin/contacts/import",
        json={"contacts": [{"email": "di@example.com"}], "list": "two words"},
    )
    assert r.status_code in (400, 422) and "list" in r.text
    assert (await server.admin.get("/admin/contacts/di@example.com")).status_code == 404
