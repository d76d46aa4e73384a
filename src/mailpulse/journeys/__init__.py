"""Journeys: definitions loaded from `journeys/*.yaml` and the pure engine that runs them."""

from mailpulse.journeys.definition import JourneyDefinition, load_journeys, parse_journey
from mailpulse.journeys.engine import (
    ContactTime,
    JourneyInstance,
    SendEffect,
    Transition,
    on_event,
    on_timer,
)

__all__ = [
    "ContactTime",
    "JourneyDefinition",
    "JourneyInstance",
    "SendEffect",
    "Transition",
    "load_journeys",
    "on_event",
    "on_timer",
    "parse_journey",
]
