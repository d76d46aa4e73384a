"""Profiles: how one event changes one contact, and how two contacts merge.

Pure functions over `Contact`; looking contacts up and storing them is the wiring's job.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email

from mailpulse.audience import lists
from mailpulse.types import Contact, Event, EventType, SegmentState


@lru_cache(maxsize=65536)
def normalize_email(raw: str) -> tuple[str | None, str | None]:
    """`(address, None)` for a usable address, `(None, reason)` otherwise.

    Syntax only: a DNS look-up per identify would put the network on the hot path, and
    a dead domain shows up as a bounce anyway.
    """
    try:
        return validate_email(raw, check_deliverability=False).normalized, None
    except EmailNotValidError as exc:
        return None, f"invalid email {raw!r}: {exc}"


def _set_email(contact: Contact, value: Any) -> None:
    if value is None or value == "":
        contact.email, contact.email_error = None, None
    elif not isinstance(value, str):
        contact.email, contact.email_error = None, f"email trait is not a string: {value!r}"
    else:
        contact.email, contact.email_error = normalize_email(value.strip())


def merge_traits(contact: Contact, traits: dict[str, Any]) -> None:
    """Segment semantics: new values overwrite, absent keys stay, null removes nothing."""
    if not traits:
        return
    contact.traits.update(traits)
    if "email" in traits:
        _set_email(contact, traits["email"])


def apply_event(contact: Contact, event: Event) -> None:
    """Fold one event into its contact."""
    if not contact.first_seen or event.timestamp < contact.first_seen:
        contact.first_seen = event.timestamp
    contact.last_seen = max(contact.last_seen, event.timestamp)
    if event.user_id is not None:
        contact.known = True
    if event.type == EventType.IDENTIFY:
        merge_traits(contact, event.traits)
    else:
        # Segment sends current traits with other calls in context.traits.
        ctx_traits = event.context.get("traits")
        if isinstance(ctx_traits, dict):
            merge_traits(contact, ctx_traits)


def merge_contacts(target: Contact, source: Contact) -> None:
    """Fold `source` (an anonymous or aliased profile) into `target`, which wins conflicts."""
    merged = dict(source.traits)
    merged.update(target.traits)
    target.traits = merged
    if target.email is None and target.email_error is None:
        target.email, target.email_error = source.email, source.email_error
    if source.first_seen and (not target.first_seen or source.first_seen < target.first_seen):
        target.first_seen = source.first_seen
    target.last_seen = max(target.last_seen, source.last_seen)
    target.known = target.known or source.known
    target.marketing_sent = sorted(target.marketing_sent + source.marketing_sent)
    target.segments = _merged_segment_state(target.segments, source.segments)
    # The variants either was sent stay counted for it; where both were tested (the same
    # person twice in one test share), the survivor's stands.
    target.variants = {**source.variants, **target.variants}
    target.lists = lists.merged(target.lists, source.lists)
    target.consent = {**source.consent, **target.consent}
    # What each message was counted for stays counted; conversions go to the later click.
    target.engaged = {**source.engaged, **target.engaged}
    clicks = [c for c in (source.last_click, target.last_click) if c is not None]
    target.last_click = max(clicks, key=lambda c: c.at) if clicks else None


def _merged_segment_state(target: SegmentState, source: SegmentState) -> SegmentState:
    """The aggregates of both histories; the survivor's memberships, which the next
    evaluation (of every segment: `evaluated_by` is cleared) compares with, so entering and
    leaving are told from the survivor's point of view. Too many kept timestamps or too high
    a count are trimmed by that evaluation."""
    recent = {key: sorted(kept) for key, kept in source.recent.items()}
    for key, kept in target.recent.items():
        recent[key] = sorted([*recent.get(key, ()), *kept])
    counts = dict(source.counts)
    for key, count in target.counts.items():
        counts[key] = counts.get(key, 0) + count
    return SegmentState(
        members=dict(target.members),
        recent=recent,
        counts=counts,
        topics={**source.topics, **target.topics},
    )
