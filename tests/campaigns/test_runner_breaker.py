"""While the protective breaker holds marketing, a campaign reads no further page of its
audience; once resumed it reads on from where it stopped, and nobody is skipped."""

from __future__ import annotations

from pathlib import Path

import msgspec

from mailpulse.campaigns import campaign_from_data
from mailpulse.campaigns.runner import CampaignRunner
from tests.runtime.test_fold import Clock, identify, running
from tests.runtime.test_fold_breaker import folded

PEOPLE = [f"u{n:02}" for n in range(20)]


async def test_a_held_campaign_reads_on_only_once_resumed(tmp_path: Path) -> None:
    clock = Clock()
    breaker: dict[str, str | None] = {"holding": None}
    async with running(tmp_path, clock, journeys={}) as h:
        await h.append([identify(n, user) for n, user in enumerate(PEOPLE)])
        await folded(h)
        data = {"id": "sale", "template": "welcome", "audience": "all"}
        campaign = campaign_from_data(data, templates={"welcome"}, segments=(), now=clock.now)
        await h.state.create_campaign("sale", "scheduled", msgspec.json.encode(campaign), 0.0)
        runner = CampaignRunner(
            log=h.log,
            state=h.state,
            append=h.append,
            clock=clock,
            page=7,
            holding=lambda: breaker["holding"],
        )
        assert await runner.step()  # a page read before the trip
        breaker["holding"] = "the protective breaker tripped at ..."
        for _ in range(3):
            assert not await runner.step()
        record = await h.state.campaign("sale")
        assert record is not None and (record.status, record.appended) == ("sending", 7)
        breaker["holding"] = None
        while await runner.step():
            pass
        await folded(h)
        record = await h.state.campaign("sale")
        assert record is not None and (record.status, record.appended) == ("sent", 20)
        assert len(await h.sends(20)) == 20
