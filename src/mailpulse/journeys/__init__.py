"""Journeys: definitions loaded from `journeys/*.yaml` and the pure engine that runs them."""

from mailpulse.journeys.definition import (
    BranchStep,
    JourneyDefinition,
    branch_segments,
    is_audience,
    load_journeys,
    parse_journey,
)
from mailpulse.journeys.engine import (
    ContactTime,
    JourneyInstance,
    SendEffect,
    Transition,
    on_event,
    on_timer,
)

__all__ = [
    "BranchStep",
    "ContactTime",
    "JourneyDefinition",
    "JourneyInstance",
    "SendEffect",
    "Transition",
    "branch_segments",
    "is_audience",
    "load_journeys",
    "on_event",
    "on_timer",
    "parse_journey",
]
