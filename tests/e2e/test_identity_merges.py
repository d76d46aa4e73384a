"""Identity merges under concurrency, embedded and scale-out alike.

Each person browses anonymously, names themselves on that device, signs in (identify with
both ids), sometimes changes user id (alias), and signs up, sometimes still from the
anonymous device. Many people do it at once. Whatever partitions their ids fall in, each
gets one welcome email that shows the first name given anonymously and the latest plan: the
merges happened, and in the order the events were sent.
"""

from __future__ import annotations

import asyncio
import random

from tests.e2e.conftest import Server, Sink

PEOPLE = 40


async def live(server: Server, n: int, rng: random.Random) -> tuple[str, str, str]:
    anon, user, email = f"dev-{n}-{rng.randrange(10**6)}", f"user-{n}", f"p{n}@example.com"
    calls = [
        ("track", {"anonymousId": anon, "event": "Product Viewed"}),
        ("identify", {"anonymousId": anon, "traits": {"first_name": f"F{n}"}}),
        ("identify", {"userId": user, "anonymousId": anon, "traits": {"email": email}}),
        ("identify", {"userId": user, "traits": {"plan": "p1"}}),
    ]
    plan, latest = "p1", user
    if rng.random() < 0.5:
        latest = f"renamed-{n}"
        calls.append(("alias", {"previousId": user, "userId": latest}))
        calls.append(("identify", {"userId": latest, "traits": {"plan": "p2"}}))
        plan = "p2"
    by = {"anonymousId": anon} if rng.random() < 0.5 else {"userId": latest}
    calls.append(("track", {**by, "event": "Signed Up"}))
    for call, body in calls:
        r = await server.send(call, body)
        assert r.status_code == 200, r.text
    return email, f"F{n}", plan


async def test_concurrent_merges_reach_each_person_once_with_the_whole_profile(
    server: Server, sink: Sink
) -> None:
    rng = random.Random(20261128)
    people = await asyncio.gather(
        *(live(server, n, random.Random(rng.random())) for n in range(PEOPLE))
    )
    await sink.wait_until(lambda: len(sink.received) >= PEOPLE, within=30)
    await asyncio.sleep(0.5)  # let any late double show itself
    assert sink.distinct_and_doubles() == (PEOPLE, 0)
    for email, first_name, plan in people:
        [got] = sink.to(email)
        text = got.message.get_body(("plain",)).get_content()
        assert f"Hello {first_name}, your plan is {plan}." in text, (email, text)
