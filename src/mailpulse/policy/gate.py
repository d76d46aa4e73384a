"""The last gate before a send intent reaches the outbox.

Issue-level policy (suppression lists, consent, caps, quiet hours) plugs in here; today the
gate refuses a contact with no usable address, with the reason kept for the lifecycle event.
"""

from __future__ import annotations

import msgspec

from mailpulse.types import Contact


class Verdict(msgspec.Struct, frozen=True):
    allowed: bool
    reason: str = ""


ALLOW = Verdict(True)


def check_send(contact: Contact, message_class: str) -> Verdict:
    if contact.email is None:
        return Verdict(False, contact.email_error or "contact has no email address")
    return ALLOW
