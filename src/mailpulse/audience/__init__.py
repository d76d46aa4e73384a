"""Profiles and (later) segments: the per-contact fold."""

from mailpulse.audience.profiles import apply_event, merge_contacts, merge_traits, normalize_email

__all__ = ["apply_event", "merge_contacts", "merge_traits", "normalize_email"]
