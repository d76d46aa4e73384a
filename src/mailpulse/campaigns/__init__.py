"""Broadcasts: one template to a whole audience, streamed, resumable, paused and cancelled;
optionally A/B-tested on part of it first."""

from mailpulse.campaigns.definition import (
    AWAITING_DECISION,
    CAMPAIGN_SEND,
    CANCELLED,
    PAUSED,
    SCHEDULED,
    SENDING,
    SENT,
    TESTING,
    Campaign,
    campaign_from_data,
    campaign_of_key,
)

__all__ = [
    "AWAITING_DECISION",
    "CAMPAIGN_SEND",
    "CANCELLED",
    "PAUSED",
    "SCHEDULED",
    "SENDING",
    "SENT",
    "TESTING",
    "Campaign",
    "campaign_from_data",
    "campaign_of_key",
]
