"""What a campaign's or a journey's messages did, as the admin API shows it: people's opens and
clicks apart from machines', conversions and revenue, and the rates over the messages sent
(counted by the fold, see mailpulse.runtime.engagement)."""

from __future__ import annotations

from pydantic import BaseModel

from mailpulse.runtime.engagement import (
    CLICKED,
    CONVERTED,
    MACHINE_CLICKED,
    MACHINE_OPENED,
    OPENED,
    SENT,
)
from mailpulse.store import StateStore


class EngagementOut(BaseModel):
    sent: int  # messages sent (250 from the receiving server)
    opened: int  # messages a person opened, each once
    clicked: int  # messages a person clicked, each once
    machine_opened: int  # messages opened by a machine (Apple's privacy proxy, a scanner)
    machine_clicked: int  # messages whose links a machine followed (a link scanner)
    converted: int  # conversion events attributed to a message's last click
    revenue: float  # what those conversions were worth
    open_rate: float | None  # opened / sent (none before anything is sent)
    click_rate: float | None  # clicked / sent
    conversion_rate: float | None  # converted / sent


async def engagement_of(state: StateStore, owner: str) -> EngagementOut:
    """The figures of `owner`: `campaign:<id>` or `journey:<id>`."""
    figures = await state.engagement(owner)

    def count(figure: str) -> int:
        return figures.get(figure, (0, 0.0))[0]

    sent = count(SENT)

    def rate(figure: str) -> float | None:
        return round(count(figure) / sent, 4) if sent else None

    return EngagementOut(
        sent=sent,
        opened=count(OPENED),
        clicked=count(CLICKED),
        machine_opened=count(MACHINE_OPENED),
        machine_clicked=count(MACHINE_CLICKED),
        converted=count(CONVERTED),
        revenue=round(figures.get(CONVERTED, (0, 0.0))[1], 2),
        open_rate=rate(OPENED),
        click_rate=rate(CLICKED),
        conversion_rate=rate(CONVERTED),
    )
