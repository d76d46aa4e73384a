"""A contact's export and erasure on a real embedded server over HTTP: the export holds all
that is kept on the contact; an erasure goes through the log and leaves a tombstone, a hashed
`erased` suppression entry and nothing personal (the export says so), the ids stay erased,
the address is never mailed again; an unknown contact is a 404; both are on record in the
audit log; and the same through `mailpulse contact`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpulse.policy.suppression import address_hash
from tests.e2e.conftest import Server, embedded_server, mailpulse_cli

ADDRESS = "ana.erase@example.com"
PERSONAL = (ADDRESS, "Ana", "Lisbon", "203.0.113.77", "Firefox/123")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with embedded_server(tmp_path) as s:
        yield s


async def known_contact(server: Server, user: str = "u-ana", address: str = ADDRESS) -> None:
    context = {"ip": "203.0.113.77", "userAgent": "Firefox/123", "list": "fair"}
    r = await server.send(
        "identify",
        {
            "userId": user,
            "anonymousId": f"anon-{user}",
            "traits": {"email": address, "first_name": "Ana", "city": "Lisbon"},
            "context": context,
        },
    )
    assert r.status_code == 200
    r = await server.send("track", {"userId": user, "event": "Signed Up", "context": context})
    assert r.status_code == 200
    await server.wait_event(user, "Email Sent")


async def test_the_export_holds_everything_kept_on_the_contact(server: Server) -> None:
    await known_contact(server)
    r = await server.admin.get("/admin/contacts/anon-u-ana/export")  # any of its ids
    assert r.status_code == 200, r.text
    exported = r.json()
    assert exported["contact_id"] == "u-ana" and exported["erased_at"] is None
    assert exported["profile"]["email"] == ADDRESS
    assert exported["profile"]["traits"]["city"] == "Lisbon" and exported["profile"]["lists"] == [
        "fair"
    ]
    assert exported["identities"] == ["anon-u-ana", "u-ana"]
    kinds = [(e["type"], e.get("event")) for e in exported["events"]]
    assert ("identify", None) in kinds and ("track", "Signed Up") in kinds
    assert ("track", "Email Sent") in kinds
    identify = next(e for e in exported["events"] if e["type"] == "identify")
    assert identify["context"]["ip"] == "203.0.113.77"
    [message] = exported["messages"]
    assert message["email"] == ADDRESS and message["status"] == "sent"
    assert message["template"] == "welcome"
    assert [j["journey_id"] for j in exported["journeys"]] == ["welcome"]
    assert exported["suppressions"] == [] and exported["complete"] is True

    r = await server.admin.get("/admin/contacts/nobody/export")
    assert r.status_code == 404 and "nobody" in r.json()["error"]
    [kept] = (await server.admin.get("/admin/audit")).json()["entries"][:1]
    assert kept["method"] == "GET" and kept["path"] == "/admin/contacts/{contact_id}/export"
    assert kept["target"] == {"contact_id": "u-ana"}


async def test_an_erased_contact_leaves_nothing_personal(server: Server) -> None:
    await known_contact(server)
    lists = (await server.admin.get("/admin/lists")).json()["lists"]
    assert lists == [{"id": "fair", "members": 1}]

    r = await server.admin.delete("/admin/contacts/u-ana")
    assert r.status_code == 200, r.text
    assert r.json()["erased"] is True and r.json()["contact_id"] == "u-ana"
    erased_at = r.json()["erased_at"]

    exported = (await server.admin.get("/admin/contacts/u-ana/export")).json()
    text = json.dumps(exported)
    for personal in PERSONAL:
        assert personal not in text, personal
    assert exported["erased_at"] == erased_at
    assert exported["profile"]["email"] is None and exported["profile"]["traits"] == {}
    assert exported["identities"] == ["anon-u-ana", "u-ana"]  # the ids stay: they are erased
    assert exported["journeys"] == [] and exported["segments"] == {}
    [entry] = exported["suppressions"]
    assert entry["reason"] == "erased" and entry["address"] is None
    assert entry["address_hash"] == address_hash(ADDRESS)
    # What happened stays, without whom it happened to.
    kinds = [(e["type"], e.get("event")) for e in exported["events"]]
    assert kinds[:2] == [("identify", None), ("track", "Signed Up")] and kinds[-1] == (
        "erase",
        None,
    )
    [message] = exported["messages"]
    assert message["email"] == "" and message["status"] == "sent" and message["context"] == {}
    assert (await server.admin.get("/admin/lists")).json()["lists"] == []  # none left in it
    contact = (await server.admin.get("/admin/contacts/u-ana")).json()
    assert contact["email"] is None and contact["traits"] == {}

    # Erased again: as it stands.
    again = await server.admin.delete("/admin/contacts/anon-u-ana")
    assert again.status_code == 200 and again.json()["erased_at"] == erased_at

    # The ids stay erased: what comes under them later is kept nowhere.
    await server.send(
        "identify", {"userId": "u-ana", "traits": {"email": ADDRESS, "first_name": "Ana"}}
    )
    await server.send("track", {"anonymousId": "anon-u-ana", "event": "Signed Up"})
    later = await server.admin.get("/admin/contacts/u-ana/export")
    for personal in PERSONAL:
        assert personal not in later.text
    assert len(later.json()["events"]) == len(exported["events"]) + 2

    # Nor does another contact take an erased id over by naming it.
    await server.send(
        "identify", {"userId": "u-other", "anonymousId": "anon-u-ana", "traits": {"x": 1}}
    )
    async with asyncio.timeout(10):
        while (other := await server.admin.get("/admin/contacts/u-other")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert other.json()["identities"] == ["u-other"]
    assert (await server.admin.get("/admin/contacts/anon-u-ana")).json()["id"] == "u-ana"

    # The address is never mailed again, whoever it comes back as.
    await server.send(
        "identify", {"userId": "u-new", "traits": {"email": ADDRESS.upper(), "first_name": "A"}}
    )
    await server.send("track", {"userId": "u-new", "event": "Signed Up"})
    suppressed = await server.wait_event("u-new", "Email Suppressed")
    assert "erased" in suppressed["properties"]["reason"]

    kept = (await server.admin.get("/admin/audit")).json()["entries"]
    erasures = [e for e in kept if e["method"] == "DELETE"]
    assert [e["summary"] for e in erasures] == ["erased already", "erasure asked"]
    assert erasures[-1]["target"] == {"contact_id": "u-ana"} and erasures[-1]["status"] == 200


async def test_erasing_an_unknown_contact_is_a_404(server: Server) -> None:
    r = await server.admin.delete("/admin/contacts/nobody")
    assert r.status_code == 404 and "nobody" in r.json()["error"]
    r = await server.admin.delete("/admin/contacts/x", params={"wait": 99})
    assert r.status_code == 400 and r.json()["where"] == "query.wait"
    [kept] = (await server.admin.get("/admin/audit")).json()["entries"][1:]
    assert kept["outcome"] == "refused" and kept["target"] == {"contact_id": "nobody"}


async def test_export_and_erase_from_the_command_line(server: Server, tmp_path: Path) -> None:
    await known_contact(server, "u-cli", "cli@example.com")
    out_file = tmp_path / "export.json"
    code, out, err = await mailpulse_cli(server, "contact", "export", "u-cli", "-o", str(out_file))
    assert code == 0, err
    assert json.loads(out_file.read_text())["profile"]["email"] == "cli@example.com"
    code, out, err = await mailpulse_cli(server, "contact", "erase", "u-cli", "--yes")
    assert code == 0, err
    assert out.startswith("u-cli: erased at ")
    code, out, err = await mailpulse_cli(server, "contact", "export", "u-cli")
    assert code == 0 and "cli@example.com" not in out and json.loads(out)["erased_at"]
    code, out, err = await mailpulse_cli(server, "contact", "erase", "nobody", "--yes")
    assert code == 1 and "no contact known as 'nobody'" in err
