"""schemathesis against the service's own OpenAPI document: no 5xx, no off-schema answer.

The server runs for real (uvicorn, SQLite files, an SMTP peer) in a thread of its own; the
examples per operation are bounded so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig

from mailpulse.api import create_app
from mailpulse.demo import CaptureInbox
from mailpulse.project import load_project
from mailpulse.runtime.pipeline import Pipeline
from tests.e2e.conftest import ADMIN_KEY, WRITE_KEY, free_port, write_project


class ServerThread(threading.Thread):
    def __init__(self, project_dir: Path, data_dir: Path, port: int) -> None:
        super().__init__(daemon=True)
        self.project_dir, self.data_dir, self.port = project_dir, data_dir, port
        self.ready = threading.Event()
        self.server: uvicorn.Server | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        inbox = CaptureInbox()
        await inbox.start()
        toml = self.project_dir / "mailpulse.toml"
        toml.write_text(toml.read_text().replace("port = 0", f"port = {inbox.port}"))
        pipeline = Pipeline.embedded(load_project(self.project_dir), self.data_dir)
        config = uvicorn.Config(
            create_app(pipeline), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        serving = asyncio.create_task(self.server.serve())
        # uvicorn has no "started" event to wait on.
        while not self.server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        self.ready.set()
        await serving
        await inbox.stop()


# Data of the documented shape may still mean nothing possible (two variants of one id, a
# subject line that does not compile): a 422 with where the mistake is answers it rightly.
_CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
            }
        }
    }
)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    root = tmp_path_factory.mktemp("fuzz")
    project = write_project(root / "project", smtp_port=0)
    port = free_port()
    thread = ServerThread(project, root / "data", port)
    thread.start()
    assert thread.ready.wait(20)
    yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json", config=_CONFIG)
    assert thread.server is not None
    thread.server.should_exit = True
    thread.join(20)


_BASIC = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()


def _fuzz(operation: schemathesis.APIOperation) -> None:
    auth = f"Bearer {ADMIN_KEY}" if operation.path.startswith("/admin") else _BASIC

    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": auth})

    check()


def test_no_server_error_and_answers_match_the_schema(
    api_schema: schemathesis.BaseSchema,
) -> None:
    # Driven by hand (not schemathesis' pytest plugin) to stay independent of pytest internals.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:
        _fuzz(operation)
