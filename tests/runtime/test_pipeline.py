"""The pipeline restarts a failed stage instead of leaving the events behind it unprocessed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailpulse.project import load_project
from mailpulse.runtime import pipeline as pipeline_module
from mailpulse.runtime.pipeline import Pipeline
from tests.e2e.conftest import write_project


async def test_a_failed_stage_is_restarted_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline_module, "RESTART_AFTER", 0.01)
    pipeline = Pipeline(load_project(write_project(tmp_path / "p", 2525)), tmp_path / "data")
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise OSError("disk full")
        done.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(pipeline._supervise("flaky", flaky))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(runs) == 3
    assert pipeline.metrics.errors.labels("flaky")._value.get() == 2


def test_the_relay_gets_the_projects_tls_and_auth(tmp_path: Path) -> None:
    from mailpulse.runtime.wiring import relay_for

    root = write_project(tmp_path / "p", 2525)
    toml = root / "mailpulse.toml"
    toml.write_text(
        toml.read_text().replace(
            "starttls = false",
            'starttls = true\nusername = "mailer"\npassword = "s3cret"\ntimeout = "5s"',
        )
    )
    s = relay_for(load_project(root))._settings
    assert (s.host, s.port, s.starttls) == ("127.0.0.1", 2525, True)
    assert (s.username, s.password, s.timeout) == ("mailer", "s3cret", 5.0)
    local = relay_for(load_project(root), smtp=("127.0.0.1", 9925))._settings
    assert (local.port, local.starttls, local.username) == (9925, False, None)
