"""Segments: the condition language (`segments/*.yaml` and the admin API, one schema), the full
recomputation of a membership from history, and its incremental evaluation event by event."""

from mailpulse.audience.segments.conditions import Condition, Segment
from mailpulse.audience.segments.incremental import MembershipChange, SegmentSet, SegmentState
from mailpulse.audience.segments.located import DefinitionError
from mailpulse.audience.segments.oracle import full_membership
from mailpulse.audience.segments.schema import (
    condition_at,
    load_segments,
    parse_segment,
    segment_from_data,
)

__all__ = [
    "Condition",
    "DefinitionError",
    "MembershipChange",
    "Segment",
    "SegmentSet",
    "SegmentState",
    "condition_at",
    "full_membership",
    "load_segments",
    "parse_segment",
    "segment_from_data",
]
