"""`mailpulse suppression` and the suppressed rows of `mailpulse import`, against a real
embedded server over HTTP: what each command prints, the file and line of every bad row, and
a non-zero exit that changes nothing when the input is wrong."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from mailpulse.cli import app
from tests.e2e.conftest import ADMIN_KEY, Server, embedded_server

runner = CliRunner()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with embedded_server(tmp_path) as s:
        yield s


async def mailpulse(server: Server, *args: str) -> Result:
    """The command, in a thread: the server answers on this test's loop meanwhile."""
    where = ["--url", server.base, "--admin-key", ADMIN_KEY]
    return await asyncio.to_thread(runner.invoke, app, [*args, *where])


async def listed(server: Server) -> list[dict]:
    return (await server.admin.get("/admin/suppressions")).json()["entries"]


async def test_add_list_and_remove(server: Server) -> None:
    added = await mailpulse(server, "suppression", "add", "Ana@Example.com", "--detail", "asked")
    assert added.exit_code == 0, added.output
    assert "Ana@Example.com: suppressed: manual" in added.stdout
    again = await mailpulse(
        server, "suppression", "add", "ana@example.com", "--reason", "unsubscribe"
    )
    assert "already suppressed: manual since 20" in again.stdout
    topic = await mailpulse(
        server, "suppression", "add", "bo@example.com", "--reason", "unsubscribe", "--topic", "news"
    )
    assert "suppressed: unsubscribe for topic news" in topic.stdout
    shown = await mailpulse(server, "suppression", "list", "--limit", "1")
    assert shown.exit_code == 0, shown.output
    assert "more: --after " in shown.stdout
    after = shown.stdout.split("more: --after ")[1].split()[0]
    rest = await mailpulse(server, "suppression", "list", "--after", after)
    assert "more:" not in rest.stdout
    both = shown.stdout + rest.stdout
    assert "ana@example.com" in both and "bo@example.com" in both and "news" in both
    only = await mailpulse(server, "suppression", "list", "--reason", "unsubscribe")
    assert "bo@example.com" in only.stdout and "ana@example.com" not in only.stdout

    removed = await mailpulse(server, "suppression", "remove", "bo@example.com", "--topic", "news")
    assert removed.exit_code == 0 and "unsubscribe entry for topic news removed" in removed.stdout
    twice = await mailpulse(server, "suppression", "remove", "bo@example.com", "--topic", "news")
    assert twice.exit_code == 1 and "has no entry for topic 'news'" in twice.stderr


async def test_bad_commands_say_what_and_change_nothing(server: Server) -> None:
    bad = await mailpulse(server, "suppression", "add", "not-an-address")
    assert bad.exit_code == 1 and "(at /address)" in bad.stderr and "invalid email" in bad.stderr
    topic = await mailpulse(
        server, "suppression", "add", "a@example.com", "--reason", "hard_bounce", "--topic", "x"
    )
    assert topic.exit_code == 1 and "take no topic (at /topic)" in topic.stderr
    reason = await mailpulse(server, "suppression", "add", "a@example.com", "--reason", "bored")
    assert reason.exit_code == 2
    assert await listed(server) == []


ENTRIES = """\
address,topic,reason,detail
ana@example.com,,hard_bounce,550 5.1.1 from the old ESP
bo@example.com,news,unsubscribe,
not-an-address,,manual,
cy@example.com,,complaint,
dee@example.com,news,erased,
"""


async def test_import_reports_bad_rows_by_file_and_line(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "entries.csv"
    path.write_text(ENTRIES)
    report = tmp_path / "refused.csv"
    result = await mailpulse(server, "suppression", "import", str(path), "--report", str(report))
    assert result.exit_code == 0, result.output
    assert f"{path}:4: invalid: address: invalid email 'not-an-address'" in result.stderr
    assert f"{path}:6: invalid: topic: erased entries are about the address" in result.stderr
    assert "3 entries added, 0 unchanged (there already), 2 rows refused" in result.stdout
    assert report.read_text().splitlines()[0] == "line,kind,reason"
    assert len(report.read_text().splitlines()) == 3
    assert {e["address"] for e in await listed(server)} == {
        "ana@example.com",
        "bo@example.com",
        "cy@example.com",
    }
    again = await mailpulse(server, "suppression", "import", str(path))
    assert "0 entries added, 3 unchanged" in again.stdout


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("e.csv", "email\nana@example.com\n", ":line 1: the header row must name an `address`"),
        ("e.ndjson", '{"address": "a@example.com"}\n[1]\n', ": line 2: a row is a JSON object"),
        ("e.txt", "ana@example.com\n", ": import reads .csv"),
    ],
)
async def test_an_unreadable_file_imports_nothing(
    server: Server, tmp_path: Path, name: str, text: str, said: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    result = await mailpulse(server, "suppression", "import", str(path))
    assert result.exit_code == 2
    assert f"{path}{said}".replace(":line", ": line") in " ".join(result.stderr.split())
    assert await listed(server) == []
    missing = await mailpulse(server, "suppression", "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr


async def test_export_to_stdout_and_to_a_file_reads_back(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "entries.csv"
    path.write_text(ENTRIES)
    await mailpulse(server, "suppression", "import", str(path))
    printed = await mailpulse(server, "suppression", "export")
    assert printed.exit_code == 0, printed.output
    rows = [json.loads(line) for line in printed.stdout.splitlines()]
    assert sorted(r["address"] for r in rows) == [
        "ana@example.com",
        "bo@example.com",
        "cy@example.com",
    ]
    saved = tmp_path / "export.csv"
    written = await mailpulse(server, "suppression", "export", "-o", str(saved))
    assert written.exit_code == 0 and f"written to {saved}" in written.stdout
    assert saved.read_text().splitlines()[0] == (
        "address,address_hash,topic,reason,detail,source,created_at"
    )
    back = await mailpulse(server, "suppression", "import", str(saved))
    assert "0 entries added, 3 unchanged" in back.stdout and "0 rows refused" in back.stdout


async def test_a_contacts_import_names_the_lines_of_suppressed_rows(
    server: Server, tmp_path: Path
) -> None:
    await mailpulse(server, "suppression", "add", "bo@example.com", "--reason", "complaint")
    await mailpulse(
        server, "suppression", "add", "cy@example.com", "--reason", "unsubscribe", "--topic", "news"
    )
    path = tmp_path / "contacts.csv"
    path.write_text(
        "email,plan\nana@example.com,pro\ninfo@example.com,pro\nBo@example.com,pro\ncy@example.com,free\n"
    )
    result = await mailpulse(server, "import", str(path))
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    assert f"{path}:4: suppressed: suppressed: complaint since" in err
    assert f"{path}:5: suppressed: suppressed for topic news: unsubscribe since" in err
    assert "3 contacts imported (2 suppressed), 1 rows refused" in result.stdout
