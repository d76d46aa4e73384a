"""Two courier processes: a campaign's messages spread over both, each sent exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project
from tests.e2e.test_campaigns import people


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    root = write_project(
        tmp_path / "project",
        sink.port,
        journeys={},
        segments={"pro": "conditions: {trait: plan, eq: pro}\n"},
    )
    toml = root / "mailpulse.toml"
    toml.write_text(toml.read_text().replace("couriers = 1\n", "couriers = 2\n"))
    return root


async def test_two_couriers_send_each_message_once(server: Server, sink: Sink) -> None:
    pro = await people(server)
    body = {"id": "spread", "template": "welcome", "audience": {"segment": "pro"}}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201
    await sink.wait_until(lambda: len(sink.received) >= len(pro), within=20)
    assert sorted(r.rcpt for r in sink.received) == sorted(f"{u}@example.com" for u in pro)
    assert len({r.message["Message-ID"] for r in sink.received}) == len(pro)
    assert len(courier_children()) == 2


async def test_couriers_leave_a_ctrl_c_to_the_server(server: Server, sink: Sink) -> None:
    """A terminal's Ctrl-C goes to the whole process group: the couriers go on (no traceback
    of theirs), and stop when the server closes them."""
    pro = await people(server)
    body = {"id": "spread", "template": "welcome", "audience": {"segment": "pro"}}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201
    await sink.wait_until(lambda: len(sink.received) >= len(pro), within=20)
    children = courier_children()
    assert len(children) == 2
    for pid in children:
        os.kill(pid, signal.SIGINT)
    await asyncio.sleep(0.5)
    assert courier_children() == children


def courier_children() -> list[int]:
    """The courier processes this test's server started."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"mailpulse.runtime.courier_process" in cmdline:
            found.append(int(entry))
    return found
