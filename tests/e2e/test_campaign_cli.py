"""`mailpulse campaign` against a running server: send with progress until it is done, status,
and errors that say what is wrong, with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, mailpulse_cli, write_project
from tests.e2e.test_campaigns import people


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(
        tmp_path / "project",
        sink.port,
        journeys={},
        segments={"pro": "conditions: {trait: plan, eq: pro}\n"},
    )


async def mailpulse(server: Server, *args: str) -> tuple[int, str, str]:
    return await mailpulse_cli(server, "campaign", *args)


async def test_send_follows_the_campaign_until_every_message_is_sent(
    server: Server, sink: Sink
) -> None:
    pro = await people(server)
    code, out, err = await mailpulse(server, "send", "launch", "-t", "welcome", "-s", "pro")
    assert code == 0, out + err
    assert "campaign launch: sent; sent 20" in out
    assert sorted(r.rcpt for r in sink.received) == sorted(f"{u}@example.com" for u in pro)
    code, out, _ = await mailpulse(server, "status", "launch")
    assert (code, out.strip().splitlines()) == (
        0,
        [
            "campaign launch: sent; 20 queued; messages: sent 20",
            "opened 0 (0.0%), clicked 0 (0.0%); by machines: opened 0, clicked 0; "
            "converted 0 (0.0%), revenue 0.00",
        ],
    )


async def test_cli_errors_name_the_problem(server: Server) -> None:
    code, _, err = await mailpulse(server, "send", "x", "-t", "welcom", "--no-follow")
    assert code == 1 and "no template named 'welcom': did you mean 'welcome'?" in err
    code, _, err = await mailpulse(server, "pause", "nope")
    assert code == 1 and "no campaign 'nope'" in err
    code, out, _ = await mailpulse(
        server, "send", "later", "-t", "welcome", "--at", "2099-01-01T00:00:00Z"
    )
    assert code == 0 and "campaign later: scheduled for 2099-01-01 00:00 UTC" in out
    code, out, _ = await mailpulse(server, "cancel", "later")
    assert (code, out.strip()) == (0, "campaign later: cancelled")
