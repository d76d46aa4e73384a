"""The contact's own clock: time zones and dates read from traits.

A contact's zone is its `timezone` trait (an IANA name such as `Europe/Berlin`) when that
names a zone, else the project's default. Dates in traits come as ISO-8601 text (a date, or a
date and time, with or without an offset) or as epoch seconds, the forms Segment libraries
send; a date or time without an offset is read in the contact's zone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@cache
def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def contact_zone(traits: Mapping[str, Any], default: str) -> ZoneInfo:
    """The contact's zone, falling back to `default` (which the project loader has checked)."""
    name = traits.get("timezone")
    found = zone(name) if isinstance(name, str) else None
    return found or zone(default) or ZoneInfo("UTC")


def next_local_time(now: float, at: time, where: ZoneInfo) -> float:
    """The first moment at or after `now` when the clock in `where` shows `at`. On a day when
    `at` does not exist (the hour skipped by a DST change), the moment just after the gap."""
    local = datetime.fromtimestamp(now, where)
    candidate = datetime.combine(local.date(), at, where)
    if candidate.timestamp() < now:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, where)
    return candidate.timestamp()


def trait_instant(value: Any, where: ZoneInfo) -> float | None:
    """The moment a trait's value names, or None when it names none."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        # An endless moment would be a wake time that, stored, reads back as nothing.
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), where).timestamp()
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=where)).timestamp()
