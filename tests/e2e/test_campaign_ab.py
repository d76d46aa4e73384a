"""A/B-tested campaigns end to end, over the admin API, /v1 and SMTP: the test share gets its
variants, opens posted over /v1 decide the test with its numbers, and the rest of the audience
receives the winner's subject line; undecided with `hold`, a person picks the winner (over the
CLI) and the rest gets that. Every recipient gets exactly one message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailpulse.campaigns.abtest import AbTest, Variant, variant_in_test
from tests.e2e.conftest import Server, Sink, write_project
from tests.e2e.test_campaign_cli import mailpulse

PEOPLE = [f"c{n:02}" for n in range(40)]
B_SUBJECT = "Last chance, {{ contact.first_name | default('friend') }}: 30% off"


@pytest.fixture
def project_dir(tmp_path: Path, sink: Sink) -> Path:
    return write_project(tmp_path / "project", sink.port, journeys={})


def ab_test(**changes: Any) -> dict[str, Any]:
    return {
        "variants": [{"id": "a"}, {"id": "b", "subject": B_SUBJECT}],
        "test_share": 0.5,
        "wait": "10s",  # long enough to pause within it on a busy machine
        "winner_by": "opens",
        **changes,
    }


def share_of(campaign_id: str, share: float) -> dict[str, str]:
    """Who the test sends to, with which variant: it derives from the ids alone."""
    tested = AbTest(
        variants=(Variant(id="a"), Variant(id="b")), test_share=share, wait=1, winner_by="opens"
    )
    found = {u: variant_in_test(campaign_id, u, tested) for u in PEOPLE}
    return {u: v for u, v in found.items() if v is not None}


async def everyone(server: Server) -> None:
    calls = [
        {"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}} for u in PEOPLE
    ]
    assert (await server.send("batch", {"batch": calls})).status_code == 200
    async with asyncio.timeout(20):
        while (await server.admin.get(f"/admin/contacts/{PEOPLE[-1]}")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def campaign(server: Server, campaign_id: str) -> dict[str, Any]:
    return (await server.admin.get(f"/admin/campaigns/{campaign_id}")).json()


async def until(
    server: Server, campaign_id: str, done: Callable[[dict[str, Any]], bool], within: float = 30
) -> dict[str, Any]:
    async with asyncio.timeout(within):
        while not done(state := await campaign(server, campaign_id)):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return state


def subjects(sink: Sink) -> dict[str, str]:
    got = {}
    for received in sink.received:
        user = received.rcpt.partition("@")[0]
        assert user not in got, f"{user} got two messages"
        got[user] = str(received.message["Subject"])
    return got


async def test_opens_decide_the_test_and_the_rest_gets_the_winner(
    server: Server, sink: Sink
) -> None:
    await everyone(server)
    tested = share_of("spring", 0.5)
    assert {"a", "b"} == set(tested.values())
    body = {"id": "spring", "template": "welcome", "audience": "all", "ab_test": ab_test()}
    created = await server.admin.post("/admin/campaigns", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["ab_test"]["phase"] == "test"

    await sink.wait_until(lambda: len(sink.received) >= len(tested), within=30)
    # Held while the opens come in: the test cannot be decided before they are counted.
    paused = await server.admin.post("/admin/campaigns/spring/pause")
    assert paused.json()["status"] == "paused", paused.text
    got = subjects(sink)
    assert set(got) == set(tested)
    for user, variant in tested.items():
        assert got[user].startswith("Last chance, friend" if variant == "b" else "Welcome, friend")

    b_side = [u for u, v in tested.items() if v == "b"]
    a_side = [u for u, v in tested.items() if v == "a"]
    opens = [
        {
            "type": "track",
            "userId": u,
            "event": "Email Opened",
            "properties": {"key": f"campaign:spring:{u}"},
        }
        for u in b_side
    ]
    # One a opens, twice, naming only the campaign: one contact, counted once.
    opens += [
        {"type": "track", "userId": a_side[0], "event": "Email Opened", "properties": p}
        for p in ({"campaign": "spring"}, {"campaign": "spring", "n": 2})
    ]
    assert (await server.send("batch", {"batch": opens})).status_code == 200
    counted = await until(
        server,
        "spring",
        lambda s: (
            [(f["sent"], f["opens"]) for f in s["ab_test"]["figures"]]
            == [(len(a_side), 1), (len(b_side), len(b_side))]
        ),
    )
    assert counted["ab_test"]["decision"] is None

    resumed = await server.admin.post("/admin/campaigns/spring/resume")
    assert resumed.json()["status"] in ("testing", "sending", "sent"), resumed.text
    await sink.wait_until(lambda: len(sink.received) >= len(PEOPLE), within=30)
    state = await until(server, "spring", lambda s: s["status"] == "sent")
    decision = state["ab_test"]["decision"]
    assert (decision["winner"], decision["rest"], decision["by"]) == ("b", ["b"], "test")
    assert decision["p"] < 0.05 and decision["z"] > 0
    figures = {f["id"]: f for f in decision["variants"]}
    assert (figures["b"]["opens"], figures["b"]["rate"]) == (len(b_side), 1.0)
    assert (figures["a"]["opens"], figures["a"]["sent"]) == (1, len(a_side))
    assert figures["a"]["p"] == decision["p"]
    assert state["ab_test"]["phase"] == "rest"

    await asyncio.sleep(0.5)  # anything more would have come by now
    got = subjects(sink)
    assert set(got) == set(PEOPLE)
    rest = set(PEOPLE) - set(tested)
    assert all(got[u] == "Last chance, friend: 30% off" for u in rest)


async def test_undecided_it_holds_until_a_person_picks(
    server: Server, sink: Sink, tmp_path: Path
) -> None:
    await everyone(server)
    tested = share_of("hold", 0.25)
    test_file = tmp_path / "test.json"
    test_file.write_text(json.dumps(ab_test(test_share=0.25, wait="1s", if_undecided="hold")))
    broken = tmp_path / "broken.json"
    broken.write_text('{"variants": [\n')
    code, out, err = await mailpulse(
        server, "send", "hold", "-t", "welcome", "--ab-test", str(broken)
    )
    assert code == 1 and f"{broken}:2: not JSON" in err, out + err
    # Followed until it waits for a person: the test's figures and its undecided verdict.
    code, out, err = await mailpulse(
        server, "send", "hold", "-t", "welcome", "--ab-test", str(test_file)
    )
    assert code == 0, out + err
    assert "campaign hold: awaiting decision" in out and "decision by test: undecided" in out
    # Nobody opens: the test cannot tell, and nothing goes to the rest.
    state = await until(server, "hold", lambda s: s["status"] == "awaiting decision")
    decision = state["ab_test"]["decision"]
    assert (decision["winner"], decision["rest"], decision["p"]) == (None, [], 1.0)
    assert state["ab_test"]["phase"] == "wait"
    await sink.wait_until(lambda: len(sink.received) >= len(tested), within=30)
    await asyncio.sleep(0.5)  # anything more would have come by now
    assert set(subjects(sink)) == set(tested)

    wrong = await server.admin.post("/admin/campaigns/hold/winner", json={"variant": "c"})
    assert wrong.status_code == 422 and wrong.json()["where"] == "/variant", wrong.text
    code, out, err = await mailpulse(server, "winner", "hold", "b")
    assert code == 0, out + err
    await sink.wait_until(lambda: len(sink.received) >= len(PEOPLE), within=30)
    state = await until(server, "hold", lambda s: s["status"] == "sent")
    decision = state["ab_test"]["decision"]
    assert (decision["winner"], decision["by"]) == ("b", "operator")
    code, out, _ = await mailpulse(server, "status", "hold")
    assert code == 0 and "decision by operator: winner b" in out
    again = await server.admin.post("/admin/campaigns/hold/winner", json={"variant": "a"})
    assert again.status_code == 409, again.text

    await asyncio.sleep(0.5)
    got = subjects(sink)
    assert set(got) == set(PEOPLE)
    assert all(got[u].startswith("Last chance") for u in set(PEOPLE) - set(tested))


async def test_bad_ab_tests_are_refused_where_they_are(server: Server) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        (ab_test(variants=[{"id": "a"}, {"id": "a"}]), 422, "/ab_test/variants/1/id"),
        (ab_test(test_share=0), 422, "/ab_test/test_share"),
        (ab_test(wait="soon"), 422, "/ab_test/wait"),
        (ab_test(winner_by="conversions"), 422, "/ab_test/winner_by"),
        (
            ab_test(variants=[{"id": "a"}, {"id": "b", "subject": "{{ oops"}]),
            422,
            "/ab_test/variants/1/subject",
        ),
        (
            ab_test(variants=[{"id": "a"}, {"id": "b", "template": "welcom"}]),
            404,
            "/ab_test/variants/1/template",
        ),
    ]
    for tested, status, where in cases:
        body = {"id": "bad", "template": "welcome", "audience": "all", "ab_test": tested}
        r = await server.admin.post("/admin/campaigns", json=body)
        assert (r.status_code, r.json()["where"]) == (status, where), r.text
    assert (await server.admin.get("/admin/campaigns")).json() == []
    plain = {"id": "plain", "template": "welcome", "audience": "all", "send_at": 4e9}
    assert (await server.admin.post("/admin/campaigns", json=plain)).status_code == 201
    r = await server.admin.post("/admin/campaigns/plain/winner", json={"variant": "a"})
    assert r.status_code == 409 and "no A/B test" in r.json()["error"]
