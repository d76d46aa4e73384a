"""The event that carries an erasure through the log to the fold that owns the contact.

It names the contact (its canonical id is the event's contact key) and the SHA-256 of every
address the profile had when the erasure was asked, so that even a replay that finds the
profile's address gone still leaves the `erased` suppression entries.
"""

from __future__ import annotations

import secrets

from mailpulse.types import Event, EventType

ERASED_BY = "erasure"  # the source of the suppression entries it leaves


def erase_event(contact_id: str, address_hashes: list[str], now: float) -> Event:
    return Event(
        type=EventType.ERASE,
        message_id=f"erase:{contact_id}:{secrets.token_hex(8)}",
        contact_key=contact_id,
        properties={"address_hashes": sorted(address_hashes)},
        context={"library": {"name": "mailpulse"}},
        timestamp=now,
        received_at=now,
    )


def address_hashes_of(event: Event) -> list[str]:
    hashes = event.properties.get("address_hashes")
    if not isinstance(hashes, list):
        return []
    return [h for h in hashes if isinstance(h, str) and len(h) == 64]
