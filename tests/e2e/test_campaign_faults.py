"""A campaign against a receiver that defers, throttles, fills up, drops connections and
refuses: every recipient ends in exactly one terminal state with the right classification,
and every deferred one is retried until it goes."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project

# local part → where its message must end, and with which last code
BEHAVIOURS = {
    "ok": ("sent", 250),
    "defer-2": ("sent", 250),  # 451 4.3.0 twice
    "throttle-1": ("sent", 250),  # 421 4.7.0 once
    "full-1": ("sent", 250),  # 452 4.2.2 once
    "drop-1": ("sent", 250),  # the connection closed at end of DATA, once
    "bounce": ("bounced", 550),  # 550 5.1.1
    "big": ("bounced", 552),  # 552 5.3.4: permanent
}
PER_BEHAVIOUR = 6


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    # Retries one second apart: the deferrals run their course within the test.
    return write_project(tmp_path / "project", sink.port, journeys={}, retry='["1s"]')


async def test_every_recipient_ends_in_one_terminal_state(server: Server, sink: Sink) -> None:
    recipients = {
        f"{behaviour}.r{n}": expected
        for behaviour, expected in BEHAVIOURS.items()
        for n in range(PER_BEHAVIOUR)
    }
    shuffled = list(recipients)
    random.Random(7).shuffle(shuffled)  # mixed, not in runs of one kind
    batch = [
        {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}}
        for user in shuffled
    ]
    assert (await server.send("batch", {"batch": batch})).status_code == 200
    async with asyncio.timeout(10):
        while (await server.admin.get(f"/admin/contacts/{shuffled[-1]}")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    body = {"id": "faults", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201

    async def settled() -> dict[str, int]:
        state = (await server.admin.get("/admin/campaigns/faults")).json()
        return state["messages"] if state["status"] == "sent" else {}

    want = {"sent": 5 * PER_BEHAVIOUR, "bounced": 2 * PER_BEHAVIOUR}
    async with asyncio.timeout(60):
        while await settled() != want:  # noqa: ASYNC110
            await asyncio.sleep(0.2)

    for user, (status, code) in recipients.items():
        [message] = (await server.admin.get(f"/admin/contacts/{user}/messages")).json()["messages"]
        assert (message["status"], message["last_code"]) == (status, code), user
        if user.startswith(("defer-2", "throttle-1", "full-1", "drop-1")):
            assert message["attempts"] == int(user.split(".")[0][-1]) + 1, user
    delivered = [r.rcpt for r in sink.received]
    sent = [f"{u}@example.com" for u, (status, _) in recipients.items() if status == "sent"]
    # Exactly once each, but a dropped connection may have taken the message before it went.
    assert set(delivered) == set(sent)
    doubles = len(delivered) - len(set(delivered))
    assert doubles <= PER_BEHAVIOUR  # at most one per dropped transaction
