"""Interest in objects, for the notifications an event about an object fans out.

A journey whose trigger has a `fan_out` (see mailpulse.journeys.definition.FanOut) starts on
an event about an object, such as `Back In Stock` for a product, for every contact who
showed interest in that object lately: viewed it, wished for it. The fold notes each such
interest in an index as it happens, so a fan-out reads its audience from the index instead of
scanning every contact's history.

An event about an object has the contact key `object:<catalog>:<id>`; the fold sends it on to
each contact of the audience as a copy whose `context.fan_out` names the journeys it is for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mailpulse.catalog.model import ITEM_ID
from mailpulse.journeys import JourneyDefinition
from mailpulse.journeys.definition import FanOut
from mailpulse.types import Event, EventType, object_of


def interest_key(catalog: str, item_id: str, performed: str) -> str:
    """The index key of interest in one object shown by one kind of event."""
    return f"{catalog}:{item_id}:{performed}"


def _id_text(value: Any) -> str | None:
    """The object id a property names, when it can name a catalog item at all (properties come
    from outside and may hold anything, a NUL that storage refuses included)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and ITEM_ID.fullmatch(value) else None


class InterestIndex:
    """What the journeys' fan-outs need noted, and whom an event about an object reaches."""

    def __init__(self, journeys: Iterable[JourneyDefinition]) -> None:
        self._fan_outs: list[tuple[str, JourneyDefinition, FanOut]] = []
        # Event name → (catalog, property holding the object's id) of the interests it shows.
        self._noted: dict[str, set[tuple[str, str]]] = {}
        for journey in journeys:
            fan_out = journey.trigger.fan_out
            if fan_out is None:
                continue
            self._fan_outs.append((journey.id, journey, fan_out))
            for performed in fan_out.performed:
                self._noted.setdefault(performed, set()).add((fan_out.catalog, fan_out.key))

    def __bool__(self) -> bool:
        return bool(self._fan_outs)

    def noted(self, event: Event) -> list[str]:
        """The index keys of the interests a contact's event shows."""
        if event.type != EventType.TRACK or event.event not in self._noted:
            return []
        keys = []
        for catalog, key in self._noted[event.event]:
            item_id = _id_text(event.properties.get(key))
            if item_id is not None:
                keys.append(interest_key(catalog, item_id, event.event))
        return keys

    def fan_outs(self, event: Event) -> list[tuple[str, FanOut]]:
        """(journey id, fan-out) of every journey an event about an object starts."""
        found = object_of(event)
        if found is None:
            return []
        catalog = found[0]
        return [
            (journey_id, fan_out)
            for journey_id, journey, fan_out in self._fan_outs
            if fan_out.catalog == catalog and journey.trigger.matches(event)
        ]


def fan_out_copy(event: Event, contact_id: str, journeys: list[str]) -> Event:
    """The event about an object, sent on to one contact of its audience."""
    return Event(
        type=EventType.TRACK,
        message_id=f"{event.message_id}>{contact_id}",
        contact_key=contact_id,
        event=event.event,
        properties=event.properties,
        context={"fan_out": journeys, "object": event.contact_key},
        timestamp=event.timestamp,
        received_at=event.received_at,
        forwarded=True,
    )
