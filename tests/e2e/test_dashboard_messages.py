"""The dashboard's message view over HTTP in both deployments: a message found by its
contact's ids, its recipient and its Message-ID, and its timeline from the log's index of
send keys (PostgreSQL's partitions included), in order, with the server's replies."""

from __future__ import annotations

from tests.e2e.conftest import Server, Sink


async def test_a_message_found_three_ways_and_its_whole_life(server: Server, sink: Sink) -> None:
    r = await server.send(
        "identify", {"userId": "u-9", "traits": {"email": "defer-1.ann@example.com"}}
    )
    assert r.status_code == 200, r.text
    r = await server.send("alias", {"userId": "u-9", "previousId": "anon-9"})
    assert r.status_code == 200, r.text
    await server.send("track", {"userId": "u-9", "event": "Signed Up"})
    [got] = await sink.wait_for("defer-1.ann@example.com", within=20)
    await server.wait_event("u-9", "Email Sent", within=20)

    found = []
    for q in ("u-9", "anon-9", "DEFER-1.ann@example.com", got.message["Message-ID"]):
        r = await server.admin.get("/admin/messages", params={"q": q})
        assert r.status_code == 200, (q, r.text)
        [message] = r.json()["messages"]
        found.append(message["key"])
    assert len(set(found)) == 1 and message["message_id"] == got.message["Message-ID"]

    r = await server.admin.get(f"/admin/messages/{message['key']}")
    assert r.status_code == 200, r.text
    life = r.json()
    assert life["message"]["status"] == "sent"
    said = [e["event"] for e in life["events"]]
    assert said == ["Email Queued", "Email Deferred", "Email Sent"], said
    deferred, sent = life["events"][1]["details"], life["events"][2]["details"]
    assert deferred["smtp_code"] == 451 and sent["smtp_code"] == 250
    assert [e["at"] for e in life["events"]] == sorted(e["at"] for e in life["events"])
