"""Engagement figures in the state store, on both stores: what fold commits add up per owner,
revenue included, taken back by negative counts, and kept apart per campaign and journey."""

from __future__ import annotations

from mailpulse.store import FoldCommit
from tests.store.conftest import StateFactory


async def test_commits_add_up_each_owners_figures(open_state: StateFactory) -> None:
    state = await open_state()
    assert await state.engagement("campaign:spring") == {}
    await state.commit(
        FoldCommit(
            checkpoint=1,
            engagement=[
                ("campaign:spring", "opened", 2, 0.0),
                ("campaign:spring", "clicked", 1, 0.0),
                ("journey:welcome", "converted", 1, 19.99),
            ],
        )
    )
    await state.commit(
        FoldCommit(
            checkpoint=2,
            engagement=[
                ("campaign:spring", "clicked", -1, 0.0),  # a scanner's first click, taken back
                ("campaign:spring", "machine_clicked", 1, 0.0),
                ("journey:welcome", "converted", 2, 30.01),
            ],
        )
    )
    assert await state.engagement("campaign:spring") == {
        "opened": (2, 0.0),
        "clicked": (0, 0.0),
        "machine_clicked": (1, 0.0),
    }
    welcome = await state.engagement("journey:welcome")
    assert welcome["converted"][0] == 3
    assert abs(welcome["converted"][1] - 50.0) < 1e-9
    assert await state.engagement("campaign:welcome") == {}
