"""The state of campaigns' A/B tests, in every store: a phase moves on only from the record it
was read as, and the counts of variants add up across commits."""

from __future__ import annotations

from mailpulse.store import FoldCommit
from tests.store.conftest import StateFactory


async def test_a_phase_moves_on_only_from_the_record_read(open_state: StateFactory) -> None:
    state = await open_state()
    assert await state.create_campaign("c1", "sending", b'{"id":"c1"}', 1.0)
    await state.advance_campaign("c1", cursor="u9", appended=3, status="sending", at=2.0)
    read = await state.campaign("c1")
    assert read is not None and (read.phase, read.decide_at, read.decision) == ("", None, None)

    moved = await state.set_campaign_phase(
        read, status="testing", cursor="", phase="wait", decide_at=60.0, decision=None, at=3.0
    )
    assert moved
    record = await state.campaign("c1")
    assert record is not None
    assert (record.status, record.cursor, record.appended, record.phase, record.decide_at) == (
        "testing",
        "",
        3,
        "wait",
        60.0,
    )
    # Testing campaigns are the runner's too: it decides them when the time comes.
    assert [r.id for r in await state.running_campaigns()] == ["c1"]

    # The record read before is stale now: nothing changes.
    assert not await state.set_campaign_phase(
        read, status="sending", cursor="", phase="rest", decide_at=None, decision=b"{}", at=4.0
    )
    # Nor after a pause that came between the read and the move.
    await state.set_campaign_status("c1", "paused", 5.0)
    assert not await state.set_campaign_phase(
        record, status="sending", cursor="", phase="rest", decide_at=None, decision=b"{}", at=6.0
    )
    paused = await state.campaign("c1")
    assert paused is not None and (paused.status, paused.phase, paused.decision) == (
        "paused",
        "wait",
        None,
    )

    assert await state.set_campaign_phase(
        paused,
        status="paused",
        cursor="",
        phase="wait",
        decide_at=60.0,
        decision=b'{"winner":"b"}',
        at=7.0,
    )
    listed = await state.campaigns()
    assert [(r.id, r.status, r.decision) for r in listed] == [("c1", "paused", b'{"winner":"b"}')]


async def test_variant_counts_add_up_across_commits(open_state: StateFactory) -> None:
    state = await open_state()
    assert await state.variant_counts("c1") == {}
    await state.commit(
        FoldCommit(checkpoint=1, variant_counts=[("c1", "a", "sent", 2), ("c1", "b", "sent", 1)])
    )
    await state.commit(
        FoldCommit(
            checkpoint=2,
            variant_counts=[
                ("c1", "a", "sent", 1),
                ("c1", "b", "opens", 1),
                ("c2", "a", "sent", 5),
            ],
        )
    )
    assert await state.variant_counts("c1") == {
        ("a", "sent"): 3,
        ("b", "sent"): 1,
        ("b", "opens"): 1,
    }
    assert await state.variant_counts("c2") == {("a", "sent"): 5}
