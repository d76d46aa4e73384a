"""Lists in the fold: an import's identify calls put their contacts in the list they name,
counted once each (a replayed call too), a merge counts the merged contact once, and a
campaign to the list reaches its members only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from mailpulse.audience.lists import members_key
from mailpulse.campaigns import campaign_from_data
from mailpulse.campaigns.runner import CampaignRunner
from mailpulse.types import Event
from tests.runtime.test_fold import Clock, identify, running, signs_in


def into(n: int, key: str, name: str, *, known: bool = True) -> Event:
    """An identify call of an import putting `key` in list `name`."""
    return Event(
        type="identify",
        message_id=f"m{n}",
        contact_key=key,
        user_id=key if known else None,
        anonymous_id=None if known else key,
        traits={"email": f"{key}@example.com"} if known else {},
        context={"list": name},
    )


async def test_members_are_counted_once_and_a_campaign_reaches_them_only(
    tmp_path: Path,
) -> None:
    async with running(tmp_path, Clock(), journeys={}) as h:
        await h.append(
            [
                into(1, "ann", "fair"),
                into(2, "bob", "fair"),
                into(3, "bob", "fair"),  # bob again: counted once
                into(4, "visitor", "fair", known=False),
                into(5, "bob", "vip"),
                identify(6, "cy"),  # in no list
            ]
        )
        await h.append([signs_in(7, "bob", "visitor")])  # one person: in the list once
        async with asyncio.timeout(5):
            while await h.state.checkpoint() < 7:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        members = await h.state.segment_members()
        assert (members[members_key("fair")], members[members_key("vip")]) == (2, 1)

        data = {"id": "fair-invite", "template": "welcome", "audience": {"list": "fair"}}
        campaign = campaign_from_data(
            data, templates={"welcome"}, segments=(), now=h.clock.now, lists={"fair"}
        )
        body = msgspec.json.encode(campaign)
        assert await h.state.create_campaign(campaign.id, "sending", body, h.clock.now)
        assert await CampaignRunner(log=h.log, state=h.state, append=h.append).step()
        record = await h.state.campaign(campaign.id)
        assert record is not None and (record.status, record.appended) == ("sent", 2)
        sent = await h.sends(2)
        rows = await h.state.outbox_for_contact(["ann", "bob", "cy"], 10)
    assert sorted(intent.contact_id for intent in sent) == ["ann", "bob"]
    assert sorted(row.intent.contact_id for row in rows) == ["ann", "bob"]
