"""The pipeline restarts a failed stage instead of leaving the events behind it unprocessed,
and its parts agree on the partitions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailpulse.observe import Metrics
from mailpulse.project import load_project
from mailpulse.runtime import supervise as supervise_module
from mailpulse.runtime.supervise import supervise
from tests.e2e.conftest import write_project
from tests.runtime.heavy_modules import EXAMPLE, heavy_modules_after


async def test_a_failed_stage_is_restarted_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise_module, "RESTART_AFTER", 0.01)
    metrics = Metrics()
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise OSError("disk full")
        done.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervise("flaky", flaky, metrics))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(runs) == 3
    assert metrics.errors.labels("flaky")._value.get() == 2


def test_the_relay_gets_the_projects_tls_and_auth(tmp_path: Path) -> None:
    from mailpulse.runtime.courier_parts import relay_for

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


def test_log_and_bus_must_agree_on_partitions(tmp_path: Path) -> None:
    from mailpulse.bus import InProcessBus
    from mailpulse.runtime.pipeline import Pipeline
    from mailpulse.store.sqlite import SqliteEventLog, SqliteStateStore

    with pytest.raises(ValueError, match="log has 1 partitions and the bus 4"):
        Pipeline(
            load_project(write_project(tmp_path / "p", 2525)),
            log=SqliteEventLog(tmp_path / "log.db"),
            state=SqliteStateStore(tmp_path / "state.db"),
            bus=InProcessBus(partitions=4),
        )


EMBEDDED = """
from pathlib import Path
from mailpulse.project import load_project
from mailpulse.runtime.pipeline import Pipeline
Pipeline.embedded(load_project(Path(sys.argv[1])), Path(sys.argv[2]))
"""


def test_an_embedded_pipeline_that_relays_loads_no_postgres_dns_or_numpy(tmp_path: Path) -> None:
    assert heavy_modules_after(EMBEDDED, str(EXAMPLE), str(tmp_path / "data")) == set()
