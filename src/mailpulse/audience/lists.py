"""Lists: named sets of contacts, such as the contacts of one import, that a campaign mails.

A contact joins a list by an identify call that names it in its context (`"context": {"list":
"spring-fair"}`), which is how `mailpulse import --list` puts the contacts of a file in one.
Membership is kept on the profile, so the fold has it at hand for the campaign that reads the
audience, and a merged contact is in the lists of both. Members are counted with segments'
(under `list:<name>`), in the fold's commits: exactly once, and what tells a campaign that a
list exists.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping

from mailpulse.types import Contact, Event, EventType

LIST_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Lists one contact can be in. Any identify call can name one, so a client that names a new
# list with every call would otherwise grow a profile, read on every event, without end.
MAX_LISTS = 100
_COUNTED_AS = "list:"


def members_key(name: str) -> str:
    """Where a list's members are counted, beside the segments'."""
    return _COUNTED_AS + name


def lists_in(members: Mapping[str, int]) -> dict[str, int]:
    """The lists among counted members, with their member counts (those with any)."""
    return {
        key[len(_COUNTED_AS) :]: count
        for key, count in members.items()
        if key.startswith(_COUNTED_AS) and count > 0
    }


def merged(kept: list[str], other: list[str]) -> list[str]:
    """The lists of a merged contact: the survivor's (`kept`), then the other's while there is
    room (MAX_LISTS)."""
    names = set(kept)
    for name in other:
        if len(names) >= MAX_LISTS:
            break
        names.add(name)
    return sorted(names)


def join(contact: Contact, event: Event) -> str | None:
    """The list `event` adds `contact` to, if it names one the contact is not in yet."""
    name = event.context.get("list") if event.type == EventType.IDENTIFY else None
    if not isinstance(name, str) or not LIST_NAME.fullmatch(name) or name in contact.lists:
        return None
    if len(contact.lists) >= MAX_LISTS:
        return None
    bisect.insort(contact.lists, name)
    return name
