"""The dashboard's message view: find messages by contact (any of its ids), by recipient address
or by Message-ID, and tell one message's whole life from the log.

Every lifecycle event of a send (queued, held, sent, deferred, bounced, complained, opened,
clicked, converted...) carries the send's idempotency key (mailpulse.runtime.lifecycle), which
the log indexes (`EventLog.for_send`).
"""

from __future__ import annotations

from typing import Any

from mailpulse.store import EventLog, OutboxRow, StateStore

MAX_QUERY = 998  # characters: the longest line RFC 5322 allows, and so any Message-ID
MESSAGES_SHOWN = 50
# Of one message: queued, a few deferrals, sent, and more opens and clicks than anyone makes.
EVENTS_SHOWN = 1_000


class SearchError(Exception):
    """A search that cannot be made (HTTP 400 or 422) or that found nothing (HTTP 404)."""

    def __init__(self, status: int, error: str, where: str = "q") -> None:
        super().__init__(error)
        self.status, self.error, self.where = status, error, where


def message_out(row: OutboxRow) -> dict[str, Any]:
    intent = row.intent
    return {
        "key": intent.key,
        "contact_id": intent.contact_id,
        "email": intent.email,
        "template": intent.template,
        "campaign": intent.campaign,
        "variant": intent.variant,
        "journey": intent.journey,
        "step": intent.step,
        "message_class": intent.message_class,
        "status": row.status,
        "attempts": row.attempts,
        "message_id": row.message_id,
        "last_code": row.last_code,
        "last_text": row.last_text,
        "created_at": intent.created_at,
        "updated_at": row.updated_at,
    }


def _check_readable(text: str, where: str) -> None:
    """Refuses what no key, id, address or Message-ID holds before it reaches the store:
    PostgreSQL rejects a NUL in text with an error, not an empty answer."""
    if len(text) > MAX_QUERY:
        raise SearchError(
            400, f"a search is at most {MAX_QUERY} characters, not {len(text):,}", where
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise SearchError(422, "a search cannot hold control characters", where)


async def find_messages(state: StateStore, query: str) -> tuple[str, list[OutboxRow]]:
    """What `query` names ("message", "contact" or "address") and its messages, newest
    first."""
    q = query.strip()
    _check_readable(q, "q")
    # Of the right shape (a string), but naming nothing that can be looked for: 422.
    if not q:
        raise SearchError(422, "type a contact id, an email address or a Message-ID")
    if "@" in q:
        bare = q.removeprefix("<").removesuffix(">")
        row = await state.outbox_by_message_id(f"<{bare}>")
        if row is not None:
            return "message", [row]
    cid = (await state.resolve([q])).get(q)
    if cid is not None:
        ids = sorted({cid, *await state.identities_of(cid)})
        return "contact", await state.outbox_for_contact(ids, MESSAGES_SHOWN)
    if "@" in q:
        rows = await state.outbox_for_address(q, MESSAGES_SHOWN)
        if rows:
            return "address", rows
        raise SearchError(
            404, f"no message has the Message-ID {q!r} or went to it, and no contact is known as it"
        )
    raise SearchError(404, f"no contact is known as {q!r}")


async def timeline(state: StateStore, log: EventLog, key: str) -> dict[str, Any]:
    """One message and everything that happened to it, in log order."""
    _check_readable(key, "key")
    row = await state.outbox_get(key)
    if row is None:
        raise SearchError(404, f"no message with the key {key!r}", "key")
    events = await log.for_send(key, EVENTS_SHOWN)
    return {
        "message": message_out(row),
        "events": [
            {
                "event": ev.event,
                "at": ev.received_at,
                "details": {k: v for k, v in ev.properties.items() if k not in _SAID_ABOVE},
            }
            for ev in events
        ],
    }


# Properties every event of a send repeats, shown once with the message.
_SAID_ABOVE = frozenset(
    ("key", "template", "message_class", "campaign", "variant", "journey", "step")
)
