"""Branching journeys end to end: a cart reminder that waits for the order, and an A/B split."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, Sink, write_project

JOURNEYS = {
    "checkout": """\
        trigger: {event: Checkout Started}
        entry: always
        steps:
          - wait_for: {event: Order Completed, timeout: 2s}
            on_timeout:
              - send: reminder
        """,
    "onboarding": """\
        trigger: {event: Signed Up}
        steps:
          - split:
              - {arm: a, weight: 1, steps: [{send: welcome}]}
              - {arm: b, weight: 1, steps: [{send: reminder, id: b-reminder}]}
        """,
}
SIGN_UPS = 200


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port, journeys=JOURNEYS)


async def identify(server: Server, user: str) -> None:
    traits = {"email": f"{user}@example.com", "first_name": user}
    assert (await server.send("identify", {"userId": user, "traits": traits})).status_code == 200


async def test_the_reminder_goes_only_to_those_who_did_not_buy(server: Server, sink: Sink) -> None:
    buyers, browsers = [f"buyer-{n}" for n in range(5)], [f"browser-{n}" for n in range(5)]
    for user in buyers + browsers:
        await identify(server, user)
        body = {"userId": user, "event": "Checkout Started", "properties": {"name": "Tent"}}
        assert (await server.send("track", body)).status_code == 200
    for user in buyers:
        assert (
            await server.send("track", {"userId": user, "event": "Order Completed"})
        ).status_code == 200
    await sink.wait_until(lambda: len(sink.received) >= len(browsers), within=15)
    await asyncio.sleep(1.0)  # anything else would have come by now
    assert sorted(r.rcpt for r in sink.received) == sorted(f"{u}@example.com" for u in browsers)
    assert {r.message["Subject"] for r in sink.received} == {"You left Tent in your cart"}


async def test_a_split_sends_each_arm_to_its_share(server: Server, sink: Sink) -> None:
    async def sign_up(n: int) -> None:
        await identify(server, f"u{n}")
        body = {"userId": f"u{n}", "event": "Signed Up", "properties": {"name": "Plan"}}
        assert (await server.send("track", body)).status_code == 200

    await asyncio.gather(*(sign_up(n) for n in range(SIGN_UPS)))
    await sink.wait_until(lambda: len(sink.received) >= SIGN_UPS, within=30)
    arm_b = sum(r.message["Subject"] == "You left Plan in your cart" for r in sink.received)
    assert len({r.rcpt for r in sink.received}) == SIGN_UPS  # each contact took one arm
    # 1 : 1, within five standard deviations of a binomial(200, 0.5).
    assert abs(arm_b - SIGN_UPS / 2) < 5 * (SIGN_UPS * 0.25) ** 0.5
    messages = (await server.admin.get("/admin/contacts/u0/messages")).json()["messages"]
    assert [m["step"] for m in messages] in (["s0-a-0"], ["b-reminder"])
