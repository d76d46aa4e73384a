"""Broadcasts: one template to a whole audience, streamed, resumable, paused and cancelled."""

from mailpulse.campaigns.definition import (
    CAMPAIGN_SEND,
    CANCELLED,
    PAUSED,
    SCHEDULED,
    SENDING,
    SENT,
    Campaign,
    campaign_from_data,
)

__all__ = [
    "CAMPAIGN_SEND",
    "CANCELLED",
    "PAUSED",
    "SCHEDULED",
    "SENDING",
    "SENT",
    "Campaign",
    "campaign_from_data",
]
