"""Erasure end to end over real SMTP, in both deployments: a contact erased while traffic
flows (its cart reminder waiting, its app still sending events with its address) gets no more
mail, while everyone else's keeps coming; its address is then nowhere in what the deployment
keeps: not in the SQLite files' bytes (the WAL emptied by the checkpoint that follows an
erasure, and again after a stop), not in any PostgreSQL row."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from tests.e2e.conftest import Deployment, Server, Sink, running_server

VICTIM = "victim.erase@example.com"
SPELLINGS = (VICTIM.encode(), b"Victim.Erase@Example.com", b"victim.erase")


async def traffic(server: Server, stop: asyncio.Event) -> int:
    """Others signing up and filling carts, until `stop`: how many."""
    n = 0
    while not stop.is_set():
        user = f"other-{n}"
        calls = [
            {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}},
            {"type": "track", "userId": user, "event": "Signed Up"},
            {
                "type": "track",
                "userId": user,
                "event": "Product Added",
                "properties": {"name": "x"},
            },
        ]
        assert (await server.send("batch", {"batch": calls})).status_code == 200
        n += 1
        await asyncio.sleep(0.05)
    return n


async def still_sending(server: Server, stop: asyncio.Event) -> None:
    """The victim's app goes on as if nothing happened."""
    while not stop.is_set():
        identify = {"userId": "u-victim", "traits": {"email": "Victim.Erase@Example.com"}}
        assert (await server.send("identify", identify)).status_code == 200
        added = {"userId": "u-victim", "event": "Product Added", "properties": {"name": "hat"}}
        assert (await server.send("track", added)).status_code == 200
        await asyncio.sleep(0.1)


def leftovers(data_dir: Path) -> dict[str, list[bytes]]:
    """Files of the data folder holding any spelling of the victim's address."""
    found = {}
    for path in sorted(data_dir.iterdir()):
        if path.is_file():
            data = path.read_bytes().lower()
            hits = [s for s in SPELLINGS if s.lower() in data]
            if hits:
                found[path.name] = hits
    return found


# Where PostgreSQL keeps what could hold an address: each table, as text.
_AS_TEXT = {
    "events": "convert_from(body, 'UTF8')",
    "contacts": "convert_from(body, 'UTF8')",
    "outbox": "convert_from(intent, 'UTF8') || last_text",
    "journey_instances": "convert_from(body, 'UTF8')",
    "unshipped_lifecycle": "convert_from(body, 'UTF8')",
    "consents": "t::text",
    "suppressions": "t::text",
}


async def rows_holding(dsn: str, needle: str) -> dict[str, int]:
    """Tables with rows holding `needle` (lower case), and how many."""
    conn = await asyncpg.connect(dsn)
    try:
        found = {}
        for table, text in _AS_TEXT.items():
            count = await conn.fetchval(
                f"SELECT count(*) FROM {table} t WHERE position($1 in lower({text})) > 0", needle
            )
            if count:
                found[table] = count
        return found
    finally:
        await conn.close()


async def test_an_erased_contact_gets_no_more_mail_and_is_kept_nowhere(
    project_dir: Path, deployment: Deployment, sink: Sink
) -> None:
    embedded = deployment.mode == "embedded"
    async with running_server(project_dir, deployment) as server:
        stop = asyncio.Event()
        others = asyncio.create_task(traffic(server, stop))
        victim_app: asyncio.Task[None] | None = None
        try:
            identify = {"userId": "u-victim", "traits": {"email": VICTIM, "first_name": "Vic"}}
            assert (await server.send("identify", identify)).status_code == 200
            await server.send("track", {"userId": "u-victim", "event": "Signed Up"})
            await sink.wait_for(VICTIM)  # the welcome
            # The cart reminder waits 2 s: erased meanwhile, it never goes.
            added = {"userId": "u-victim", "event": "Product Added", "properties": {"n": "hat"}}
            await server.send("track", added)
            await server.wait_event("u-victim", "Product Added")
            # What is looked for is there to be found, until the erasure.
            if embedded:
                assert leftovers(deployment.data_dir)
            else:
                found = await rows_holding(deployment.store, "victim.erase")
                assert found.keys() >= {"events", "contacts", "outbox"}
            r = await server.admin.delete("/admin/contacts/u-victim")
            assert r.status_code == 200 and r.json()["erased"], r.text
            victim_app = asyncio.create_task(still_sending(server, stop))

            # Others' mail keeps coming, well past when the victim's reminder was due.
            before = len(sink.received)
            await sink.wait_until(
                lambda: sum("other-" in m.rcpt for m in sink.received[before:]) >= 10, within=30
            )
            await asyncio.sleep(3)
        finally:
            stop.set()
            sent_others = await others
            if victim_app is not None:
                await victim_app
        assert sent_others > 10
        assert len(sink.to(VICTIM)) == 1, "mail reached the erased contact"

        entries = (await server.admin.get(f"/admin/suppressions/{VICTIM}")).json()["entries"]
        assert [(e["reason"], e["address"]) for e in entries] == [("erased", None)]
        if embedded:
            # The checkpoint after an erasure (and after each event folded as nothing)
            # empties the WAL: soon nothing of the address is left in the files.
            async with asyncio.timeout(15):
                while leftovers(deployment.data_dir):  # noqa: ASYNC110 (files have no event)
                    await asyncio.sleep(0.2)
        else:
            assert await rows_holding(deployment.store, "victim.erase") == {}

    # Stopped: every file checkpointed and closed.
    if embedded:
        assert leftovers(deployment.data_dir) == {}
        assert {p.name for p in deployment.data_dir.iterdir()} >= {"log.db", "state.db"}
    else:
        assert await rows_holding(deployment.store, "victim.erase") == {}
