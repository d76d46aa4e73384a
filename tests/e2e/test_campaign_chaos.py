"""A campaign against a receiver that answers each message at random, some of them slowly:
421, 451, 452, a dropped connection, 550, 552 or 250, drawn anew for every attempt. However
the draws fall, every recipient ends in exactly one terminal state that matches the last
answer it got, after as many attempts as it was answered, each retry after the backoff."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.e2e.conftest import Received, Server, Sink, write_project

RECIPIENTS = 60
RETRY = 1.0  # seconds: the project's retry schedule
# answer → weight; a quarter of all attempts end a message for good (250, 550 or 552)
ANSWERS = {
    "250 2.0.0 OK": 52,
    "451 4.3.0 try again later": 10,
    "421 4.7.0 too many messages, slow down": 8,
    "452 4.2.2 mailbox full": 7,
    "drop": 8,
    "550 5.1.1 no such user": 8,
    "552 5.3.4 too big": 7,
}
SLOW = 0.2  # the share of answers that take a while


@dataclass
class ChaosSink(Sink):
    seed: int = 0
    # recipient → (when, answer) for every attempt, in order
    answers: dict[str, list[tuple[float, str]]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        self._draw = random.Random(self.seed)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        rcpt = envelope.rcpt_tos[0]
        answer = self._draw.choices(list(ANSWERS), weights=list(ANSWERS.values()))[0]
        if self._draw.random() < SLOW:
            await asyncio.sleep(self._draw.uniform(0.05, 0.4))
        self.answers[rcpt].append((time.monotonic(), answer))
        if answer == "drop":
            assert server.transport is not None
            server.transport.abort()
            return "421 4.4.2 connection dropped"
        if answer.startswith("250"):
            self.received.append(Received(envelope.mail_from, rcpt, envelope.original_content))
            self._arrival.set()
        return answer


@pytest.fixture(params=[7, 11])
async def sink(request: pytest.FixtureRequest) -> AsyncIterator[ChaosSink]:
    s = ChaosSink(seed=request.param)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def project_dir(tmp_path: Path, sink: ChaosSink) -> Path:
    return write_project(tmp_path / "project", sink.port, journeys={}, retry=f'["{RETRY:g}s"]')


async def test_every_recipient_ends_as_its_last_answer_says(
    server: Server, sink: ChaosSink
) -> None:
    users = [f"chaos{n}" for n in range(RECIPIENTS)]
    batch = [
        {"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}} for u in users
    ]
    assert (await server.send("batch", {"batch": batch})).status_code == 200
    async with asyncio.timeout(10):
        while (await server.admin.get(f"/admin/contacts/{users[-1]}")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    body = {"id": "chaos", "template": "welcome", "audience": "all"}
    assert (await server.admin.post("/admin/campaigns", json=body)).status_code == 201

    async def settled() -> bool:
        state = (await server.admin.get("/admin/campaigns/chaos")).json()
        messages = state["messages"]
        ended = messages.get("sent", 0) + messages.get("bounced", 0)
        return state["status"] == "sent" and ended == RECIPIENTS

    async with asyncio.timeout(90):
        while not await settled():  # noqa: ASYNC110
            await asyncio.sleep(0.2)

    for user in users:
        rcpt = f"{user}@example.com"
        answers = sink.answers[rcpt]
        last = answers[-1][1]
        rows = (await server.admin.get(f"/admin/contacts/{user}/messages")).json()["messages"]
        assert len(rows) == 1, user
        [row] = rows
        assert row["status"] == ("sent" if last.startswith("2") else "bounced"), (user, answers)
        assert row["last_code"] == int(last[:3]), (user, answers)
        assert row["attempts"] == len(answers), (user, answers)
        # Every answer before the last was temporary, and each retry waited its turn.
        assert all(a[:1] in "4d" for _, a in answers[:-1]), (user, answers)
        gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(answers)]
        assert all(gap >= RETRY * 0.9 for gap in gaps), (user, gaps)
    received = [r.rcpt for r in sink.received]
    assert len(received) == len(set(received))  # nobody twice
    assert sorted(received) == sorted(
        f"{u}@example.com" for u in users if sink.answers[f"{u}@example.com"][-1][1][0] == "2"
    )
    draws = {a.split()[0] for history in sink.answers.values() for _, a in history}
    assert draws == {a.split()[0] for a in ANSWERS}, "the draw covered every kind of answer"
