"""The suppression list in the state store, on both stores: the stronger entry of an address
and topic stands, an erased address keeps nothing but its hash, entries page in a stable
order, and what one store writes every store open on the same data sees at once (as the folds
of all partitions share PostgreSQL)."""

from __future__ import annotations

import asyncio

from mailpulse.policy.suppression import address_hash, entry
from mailpulse.store import FoldCommit
from mailpulse.types import Suppression
from tests.store.conftest import StateFactory


def bounce(address: str, at: float = 100.0) -> Suppression:
    return entry(address, "hard_bounce", detail="550 5.1.1 no such user", source="smtp", at=at)


async def test_entries_are_found_by_the_hash_of_their_address(open_state: StateFactory) -> None:
    state = await open_state()
    added = await state.add_suppressions(
        [bounce("ana@example.com"), entry("bo@example.com", "unsubscribe", topic="news", at=5.0)]
    )
    assert len(added) == 2
    found = await state.suppressions_for([address_hash("ana@example.com"), address_hash("x@y.z")])
    assert found == [bounce("ana@example.com")]
    assert found[0].address == "ana@example.com" and found[0].detail == "550 5.1.1 no such user"
    assert await state.suppressions_for([]) == []


async def test_the_entry_that_blocks_more_stands(open_state: StateFactory) -> None:
    state = await open_state()
    unsubscribed = entry("ana@example.com", "unsubscribe", at=1.0)
    assert await state.add_suppressions([unsubscribed]) == [unsubscribed]
    # The same again, or a weaker one later: the first stands, with its time.
    assert await state.add_suppressions([entry("ana@example.com", "unsubscribe", at=2.0)]) == []
    assert await state.add_suppressions([bounce("ana@example.com", 3.0)]) == [
        bounce("ana@example.com", 3.0)
    ]
    assert await state.add_suppressions([entry("ana@example.com", "manual", at=4.0)]) == []
    [standing] = await state.suppressions_for([address_hash("ana@example.com")])
    assert (standing.reason, standing.created_at) == ("hard_bounce", 3.0)
    # Within one call too: the strongest of the batch, the first of equals.
    weak, strong = entry("bo@example.com", "unsubscribe", at=1.0), bounce("bo@example.com")
    assert await state.add_suppressions([weak, strong, bounce("bo@example.com", 9.0)]) == [strong]


async def test_an_erased_address_keeps_only_its_hash(open_state: StateFactory) -> None:
    state = await open_state()
    key = address_hash("ana@example.com")
    await state.add_suppressions(
        [entry("ana@example.com", "unsubscribe", topic="news", at=1.0), bounce("ana@example.com")]
    )
    erased = entry("ana@example.com", "erased", source="gdpr", at=5.0)
    assert erased.address is None
    assert await state.add_suppressions([erased]) == [erased]
    assert await state.suppressions_for([key]) == [erased]
    # Nothing comes back for it: not the address in a topic's entry, not a weaker reason.
    later = [
        entry("ana@example.com", "unsubscribe", topic="news", at=6.0),
        bounce("ana@example.com"),
    ]
    assert await state.add_suppressions(later) == []
    assert await state.suppressions_for([key]) == [erased]
    assert not await state.remove_suppression(key, "")
    assert await state.suppressions_for([key]) == [erased]


async def test_an_erasure_among_other_entries_of_its_address(open_state: StateFactory) -> None:
    state = await open_state()
    erased = entry("ana@example.com", "erased", at=5.0)
    topic = entry("ana@example.com", "manual", topic="news", at=6.0)
    assert await state.add_suppressions([topic, erased]) == [erased]
    assert await state.suppressions_for([address_hash("ana@example.com")]) == [erased]


async def test_entries_page_in_a_stable_order_and_filter(open_state: StateFactory) -> None:
    state = await open_state()
    entries = [bounce(f"b{n}@example.com") for n in range(5)]
    entries += [entry(f"u{n}@example.com", "unsubscribe", topic="news", at=1.0) for n in range(4)]
    entries.append(entry("u0@example.com", "unsubscribe", at=2.0))
    await state.add_suppressions(entries)
    pages, after = [], ("", "")
    while page := await state.suppressions_after(after, 3):
        pages.append(page)
        after = (page[-1].address_hash, page[-1].topic)
    listed = [e for page in pages for e in page]
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert listed == sorted(entries, key=lambda e: (e.address_hash, e.topic))
    bounces = await state.suppressions_after(("", ""), 100, reason="hard_bounce")
    assert sorted(e.address for e in bounces) == [f"b{n}@example.com" for n in range(5)]
    news = await state.suppressions_after(("", ""), 100, topic="news")
    assert len(news) == 4 and {e.topic for e in news} == {"news"}
    global_unsubscribes = await state.suppressions_after(
        ("", ""), 100, reason="unsubscribe", topic=""
    )
    assert [e.address for e in global_unsubscribes] == ["u0@example.com"]


async def test_removing_an_entry(open_state: StateFactory) -> None:
    state = await open_state()
    await state.add_suppressions(
        [bounce("ana@example.com"), entry("ana@example.com", "manual", topic="news", at=1.0)]
    )
    key = address_hash("ana@example.com")
    assert await state.remove_suppression(key, "news")
    assert not await state.remove_suppression(key, "news")
    assert [e.topic for e in await state.suppressions_for([key])] == [""]


async def test_a_fold_commit_adds_its_entries_with_its_checkpoint(
    open_state: StateFactory,
) -> None:
    state = await open_state()
    await state.commit(FoldCommit(checkpoint=3, suppressions=[bounce("ana@example.com")]))
    assert await state.checkpoint() == 3
    # A replay of the batch: nothing changes.
    await state.commit(FoldCommit(checkpoint=3, suppressions=[bounce("ana@example.com", 200.0)]))
    [standing] = await state.suppressions_for([address_hash("ana@example.com")])
    assert standing.created_at == 100.0


async def test_what_one_store_adds_another_sees(open_state: StateFactory) -> None:
    stores = [await open_state(), await open_state()]
    await asyncio.gather(
        *(stores[n % 2].add_suppressions([bounce(f"p{n}@example.com")]) for n in range(20))
    )
    hashes = [address_hash(f"p{n}@example.com") for n in range(20)]
    for state in stores:
        assert len(await state.suppressions_for(hashes)) == 20
