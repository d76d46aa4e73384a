"""`mailpulse import` and `POST /admin/contacts/import` end to end: good rows become contacts,
refused ones are reported with their line and reason, and all-or-nothing imports nothing when
any row is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.conftest import Server, mailpulse_cli

CSV = """\
email,first_name,plan
ana@example.com,Ana,pro
info@example.com,Info,free
not-an-address,Bad,free
bo@example.com,Bo,free
ana@example.com,Ana again,pro
"""


async def mailpulse_import(server: Server, *args: str) -> tuple[int, str, str]:
    return await mailpulse_cli(server, "import", *args)


async def contact(server: Server, user_id: str) -> dict | None:
    r = await server.admin.get(f"/admin/contacts/{user_id}")
    return r.json() if r.status_code == 200 else None


async def test_a_file_imports_its_good_rows_and_reports_the_rest(
    server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text(CSV)
    code, out, err = await mailpulse_import(server, str(path), "--all-or-nothing")
    assert code == 1 and "nothing imported" in err
    assert f"{path}:3: role: info@example.com is a role account" in err
    assert f"{path}:4: invalid: email 'not-an-address'" in err
    assert f"{path}:6: duplicate" in err
    await asyncio.sleep(0.3)
    assert await contact(server, "ana@example.com") is None

    report = tmp_path / "refused.csv"
    code, out, err = await mailpulse_import(server, str(path), "--report", str(report))
    assert code == 0, err
    assert "2 contacts imported (0 suppressed), 3 rows refused" in out
    assert report.read_text().splitlines()[0] == "line,kind,reason"
    assert len(report.read_text().splitlines()) == 4
    async with asyncio.timeout(10):
        while (ana := await contact(server, "ana@example.com")) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert ana["traits"] == {"email": "ana@example.com", "first_name": "Ana", "plan": "pro"}


async def test_the_api_checks_rows_and_can_refuse_all(server: Server) -> None:
    rows = [{"id": "u1", "email": "u1@example.com"}, {"email": "postmaster@example.com"}]
    r = await server.admin.post(
        "/admin/contacts/import", json={"contacts": rows, "all_or_nothing": True, "first_row": 10}
    )
    assert r.status_code == 200
    assert r.json() == {
        "imported": 0,
        "rejected": [
            {
                "row": 11,
                "kind": "role",
                "reason": "postmaster@example.com is a role account, not a person",
            }
        ],
        "suppressed": [],
    }
    r = await server.admin.post("/admin/contacts/import", json={"contacts": rows})
    assert r.json()["imported"] == 1
    bad = await server.admin.post("/admin/contacts/import", json={"contacts": "nope"})
    assert bad.status_code == 400
