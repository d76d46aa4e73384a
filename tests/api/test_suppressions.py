"""The suppression admin API on a real embedded server over HTTP: add, look up, page, remove,
import and export; the contacts import reporting suppressed rows; and every kind of bad
request refused with what is wrong and where, changing nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailpulse.policy.suppression import address_hash
from tests.e2e.conftest import Server, embedded_server

BASE = "/admin/suppressions"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with embedded_server(tmp_path) as s:
        yield s


async def entries(server: Server, **params: str) -> list[dict]:
    r = await server.admin.get(BASE, params=params)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


async def test_add_look_up_and_remove(server: Server) -> None:
    r = await server.admin.post(BASE, json={"address": " Ana@Example.COM ", "detail": "asked"})
    assert r.status_code == 201, r.text
    added = r.json()
    assert added["added"] is True
    assert {k: added["entry"][k] for k in ("address", "topic", "reason", "detail", "source")} == {
        "address": "ana@example.com",
        "topic": "",
        "reason": "manual",
        "detail": "asked",
        "source": "admin",
    }
    # The same again, or a weaker one: what stands is answered, with 200.
    again = await server.admin.post(
        BASE, json={"address": "ana@example.com", "reason": "unsubscribe"}
    )
    assert again.status_code == 200 and again.json()["added"] is False
    assert again.json()["entry"]["reason"] == "manual"
    topic = {"address": "ana@example.com", "reason": "unsubscribe", "topic": "news"}
    assert (await server.admin.post(BASE, json=topic)).status_code == 201

    looked = (await server.admin.get(f"{BASE}/ANA@example.com")).json()
    assert looked["address_hash"] == address_hash("ana@example.com")
    assert [(e["topic"], e["reason"]) for e in looked["entries"]] == [
        ("", "manual"),
        ("news", "unsubscribe"),
    ]
    gone = await server.admin.delete(f"{BASE}/ana@example.com", params={"topic": "news"})
    assert gone.status_code == 200 and gone.json()["topic"] == "news"
    assert (
        await server.admin.delete(f"{BASE}/ana@example.com", params={"topic": "news"})
    ).status_code == 404
    assert (await server.admin.delete(f"{BASE}/ana@example.com")).status_code == 200
    missing = await server.admin.get(f"{BASE}/ana@example.com")
    assert missing.status_code == 404 and "not on the suppression list" in missing.json()["error"]
    registry = server.pipeline.metrics.registry
    counted = {
        reason: registry.get_sample_value("mailpulse_suppressions_added_total", {"reason": reason})
        for reason in ("manual", "unsubscribe")
    }
    assert counted == {"manual": 1.0, "unsubscribe": 1.0}


async def test_an_erased_entry_keeps_no_address_and_stays(server: Server) -> None:
    await server.admin.post(
        BASE, json={"address": "gone@example.com", "reason": "unsubscribe", "topic": "news"}
    )
    r = await server.admin.post(BASE, json={"address": "gone@example.com", "reason": "erased"})
    assert r.status_code == 201
    assert r.json()["entry"]["address"] is None
    hashed = address_hash("gone@example.com")
    looked = (await server.admin.get(f"{BASE}/gone@example.com")).json()
    assert [(e["address"], e["reason"]) for e in looked["entries"]] == [(None, "erased")]
    assert (await server.admin.get(f"{BASE}/{hashed}")).json() == looked
    again = await server.admin.post(BASE, json={"address": "gone@example.com", "topic": "news"})
    assert again.status_code == 200 and again.json()["entry"]["reason"] == "erased"
    refused = await server.admin.delete(f"{BASE}/gone@example.com")
    assert refused.status_code == 409 and "erased" in refused.json()["error"]
    assert (await server.admin.get(f"{BASE}/{hashed}")).json() == looked
    assert "gone@example.com" not in (await server.admin.get(f"{BASE}/export")).text


async def test_pages_are_stable_and_filtered(server: Server) -> None:
    for n in range(7):
        await server.admin.post(BASE, json={"address": f"m{n}@example.com"})
    for n in range(3):
        body = {"address": f"u{n}@example.com", "reason": "unsubscribe", "topic": "news"}
        await server.admin.post(BASE, json=body)
    seen, after = [], ""
    while True:
        page = (await server.admin.get(BASE, params={"limit": 4, "after": after})).json()
        seen += page["entries"]
        if page["next"] is None:
            break
        after = page["next"]
    assert len(seen) == 10
    assert [e["address_hash"] for e in seen] == sorted(e["address_hash"] for e in seen)
    assert len(await entries(server, reason="manual")) == 7
    assert {e["address"] for e in await entries(server, topic="news")} == {
        f"u{n}@example.com" for n in range(3)
    }
    assert len(await entries(server, topic="")) == 7
    assert await entries(server, reason="complaint") == []


@pytest.mark.parametrize(
    ("body", "status", "where", "said"),
    [
        ({"address": "not-an-address"}, 422, "/address", "invalid email"),
        (
            {"address": "a@example.com", "reason": "hard_bounce", "topic": "news"},
            422,
            "/topic",
            "take no topic",
        ),
        ({"address": "a@example.com", "topic": "two\nlines"}, 422, "/topic", "one line"),
        ({"address": "a@example.com", "reason": "bored"}, 400, "body.reason", None),
        ({"address": "a@example.com", "colour": "red"}, 400, "body.colour", None),
        ({"reason": "manual"}, 400, "body.address", None),
    ],
)
async def test_bad_entries_are_refused_and_change_nothing(
    server: Server, body: dict, status: int, where: str, said: str | None
) -> None:
    r = await server.admin.post(BASE, json=body)
    assert r.status_code == status, r.text
    assert r.json()["where"] == where
    if said:
        assert said in r.json()["error"]
    assert await entries(server) == []


async def test_bad_look_ups_and_no_key(server: Server) -> None:
    bad = await server.admin.get(f"{BASE}/nobody")
    assert bad.status_code == 422 and "invalid email" in bad.json()["error"]
    assert (await server.admin.delete(f"{BASE}/nobody")).status_code == 422
    assert (await server.admin.get(BASE, params={"limit": 0})).status_code == 400
    assert (await server.admin.get(BASE, params={"reason": "bored"})).status_code == 400
    assert (await server.client.post(BASE, json={"address": "a@example.com"})).status_code == 401
    assert await entries(server) == []


IMPORT_CSV = """\
address,topic,reason,detail
ana@example.com,,hard_bounce,550 5.1.1 from our old ESP
bo@example.com,news,unsubscribe,
not-an-address,,manual,
cy@example.com,,bored,
ana@example.com,,unsubscribe,
"""


async def test_import_reports_each_bad_row_with_its_line(server: Server) -> None:
    r = await server.admin.post(
        f"{BASE}/import", content=IMPORT_CSV, headers={"content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["added"], report["unchanged"]) == (2, 1)
    assert [(x["row"], x["field"]) for x in report["rejected"]] == [(4, "address"), (5, "reason")]
    assert "not one of hard_bounce" in report["rejected"][1]["reason"]
    found = {(e["address"], e["topic"], e["reason"], e["source"]) for e in await entries(server)}
    assert found == {
        ("ana@example.com", "", "hard_bounce", "import"),
        ("bo@example.com", "news", "unsubscribe", "import"),
    }
    ndjson = b'{"address": "cy@example.com", "reason": "complaint"}\n\n{"address": 5}\n'
    r = await server.admin.post(
        f"{BASE}/import", content=ndjson, headers={"content-type": "application/x-ndjson"}
    )
    assert r.json()["added"] == 1
    assert [(x["row"], x["reason"]) for x in r.json()["rejected"]] == [(3, "address 5 is not text")]


@pytest.mark.parametrize(
    ("content", "kind", "status", "said"),
    [
        (
            "email\nana@example.com\n",
            "text/csv",
            422,
            "must name an `address` or an `address_hash`",
        ),
        (
            '{"address": "a@example.com"}\nnot json\n',
            "application/x-ndjson",
            422,
            "line 2: not JSON",
        ),
        ("address\na@example.com\n", "application/json", 415, "text/csv or application/x-ndjson"),
        ("address\n" + "a@example.com\n" * 10_001, "text/csv", 413, "at most 10,000 rows"),
    ],
)
async def test_an_unreadable_import_is_refused_whole(
    server: Server, content: str, kind: str, status: int, said: str
) -> None:
    r = await server.admin.post(f"{BASE}/import", content=content, headers={"content-type": kind})
    assert r.status_code == status, r.text
    assert said in r.json()["error"]
    assert await entries(server) == []


async def test_export_reads_back_as_import(server: Server) -> None:
    rows = IMPORT_CSV + "dee@example.com,,erased,\n"
    await server.admin.post(f"{BASE}/import", content=rows, headers={"content-type": "text/csv"})
    exported = await server.admin.get(f"{BASE}/export")
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert len(lines) == 3 and {line["reason"] for line in lines} == {
        "hard_bounce",
        "unsubscribe",
        "erased",
    }
    as_csv = await server.admin.get(f"{BASE}/export", params={"format": "csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert sorted(r["address_hash"] for r in table) == sorted(
        line["address_hash"] for line in lines
    )
    for content, kind in ((exported.content, "application/x-ndjson"), (as_csv.content, "text/csv")):
        again = await server.admin.post(
            f"{BASE}/import", content=content, headers={"content-type": kind}
        )
        assert again.json() == {"added": 0, "unchanged": 3, "rejected": []}


async def test_the_contacts_import_reports_suppressed_rows(server: Server) -> None:
    await server.admin.post(BASE, json={"address": "ana@example.com", "reason": "complaint"})
    topic = {"address": "bo@example.com", "reason": "unsubscribe", "topic": "news"}
    await server.admin.post(BASE, json=topic)
    rows = [{"email": "ANA@example.com"}, {"email": "bo@example.com"}, {"email": "cy@example.com"}]
    r = await server.admin.post("/admin/contacts/import", json={"contacts": rows, "first_row": 2})
    assert r.status_code == 200
    report = r.json()
    assert report["imported"] == 3 and report["rejected"] == []
    assert [(x["row"], x["kind"]) for x in report["suppressed"]] == [
        (2, "suppressed"),
        (3, "suppressed"),
    ]
    assert report["suppressed"][0]["reason"].startswith("suppressed: complaint since ")
    assert report["suppressed"][1]["reason"].startswith("suppressed for topic news: unsubscribe")
