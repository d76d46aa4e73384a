"""A broadcast campaign: one template to a whole audience, at once or from a given time.

Created over the admin API (or the CLI, which calls it) from data such as

```json
{"id": "black-friday", "name": "Black Friday", "template": "sale",
 "audience": {"segment": "engaged"}, "topic": "promotions", "send_at": "2026-11-27T08:00:00Z"}
```

`audience` is a segment of the project, a list (`{"list": "spring-fair"}`: the contacts an
import put in it, see mailpulse.audience.lists), or `"all"` (every contact with an address); an
optional `ab_test` tests variants on part of it first (see mailpulse.campaigns.abtest). Every
mistake is refused with a JSON Pointer to it and the fix, and nothing is created.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import msgspec

from mailpulse.audience.segments.conditions import epoch
from mailpulse.audience.segments.located import DataLocated, Located
from mailpulse.campaigns.abtest import AbTest, Conversion, ab_test_from_data
from mailpulse.delivery.address import ascii_domain, parse_address
from mailpulse.policy.topics import unknown_topic
from mailpulse.yamlnodes import suggest

_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_KEYS = (
    "id",
    "name",
    "template",
    "audience",
    "topic",
    "sender",
    "send_at",
    "local_time",
    "ab_test",
)
# The first zone to reach a wall-clock time is UTC+14 (Kiribati): a campaign sent at a local
# time starts then, and holds each message until its recipient's clock shows that time.
_EARLIEST_OFFSET = 14 * 3600
_EXAMPLE = '{"id": "spring-sale", "template": "sale", "audience": {"segment": "engaged"}}'

# Where a campaign stands: `scheduled` until its time, `sending` while its audience is read,
# `sent` once every recipient's message is queued; `paused` and `cancelled` by a person. An
# A/B-tested one is `testing` between its test sends and the decision, and `awaiting decision`
# when the test could not tell and a person is to pick.
SCHEDULED, SENDING, SENT, PAUSED, CANCELLED = "scheduled", "sending", "sent", "paused", "cancelled"
TESTING, AWAITING_DECISION = "testing", "awaiting decision"
CAMPAIGN_SEND = "Campaign Send"
# Contacts a campaign reads at a time, and messages (or unfolded events) that may wait for
# delivery before it reads on ([campaigns] page and ahead). Kept under the fold's contact cache
# (mailpulse.runtime.fold.CACHED_CONTACTS) with a page to spare: a recipient loaded for its
# campaign send is still cached when its Email Sent comes back, instead of read again.
PAGE = 1000
AHEAD = 2000
_KEY_PREFIX = "campaign:"


class Campaign(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    name: str
    template: str
    segment: str | None = None  # None (and no list): every contact with an address
    list: str | None = None
    topic: str | None = None
    sender: str | None = None  # its From ("News <news@shop.example>"); None: the project's
    send_at: float = 0.0  # epoch seconds; 0: at once
    # A wall-clock time ("2026-12-01T09:00") each recipient gets it at, on their own clock.
    local_time: str | None = None
    ab_test: AbTest | None = None
    created_at: float = 0.0

    def key_for(self, contact_id: str) -> str:
        """The idempotency key of the message to one recipient."""
        return f"{_KEY_PREFIX}{self.id}:{contact_id}"


def campaign_of_key(key: str) -> str | None:
    """The campaign a message's idempotency key (`Campaign.key_for`) is of, if any."""
    if not key.startswith(_KEY_PREFIX):
        return None
    campaign_id, colon, _ = key[len(_KEY_PREFIX) :].partition(":")
    return campaign_id if colon else None


def campaign_from_data(
    data: Any,
    *,
    templates: Collection[str],
    segments: Collection[str],
    now: float,
    lists: Collection[str] = (),
    signing_domain: str | None = None,
    topics: Collection[str] | None = None,
    conversion: Conversion | None = None,
) -> Campaign:
    """The campaign in `data`; raises `DefinitionError` (mailpulse.audience.segments) with a
    JSON Pointer to the bad value. `lists`: those with members; `signing_domain`: the DKIM
    domain its From must align with, if it signs; `topics`: the project's, if checked;
    `conversion`: the project's, what an A/B test naming none counts."""
    at = DataLocated(data, "campaign")
    pairs = at.pairs("a campaign", _EXAMPLE)
    for key, key_at, _ in pairs:
        if key not in _KEYS:
            key_at.fail(f"unknown key {key!r} in a campaign: {suggest(key, _KEYS)}")
    entries = {key: value for key, _, value in pairs}
    for key in ("id", "template", "audience"):
        if key not in entries or entries[key].is_null:
            at.fail(f"missing `{key}`: e.g. {_EXAMPLE}")
    campaign_id = entries["id"].text("id")
    if not _ID.fullmatch(campaign_id):
        entries["id"].fail("an id is 1 to 64 letters, digits, '_', '-' or '.'")
    template = entries["template"].text("template")
    if template not in templates:
        entries["template"].fail(f"no template named {template!r}: {suggest(template, templates)}")
    segment, listed = _audience(entries["audience"], segments, lists)
    send_at, local_time = 0.0, None
    if "send_at" in entries and "local_time" in entries:
        entries["local_time"].fail(
            "give send_at (one moment) or local_time (each recipient's clock)"
        )
    if "send_at" in entries:
        send_at = _send_at(entries["send_at"])
    if "local_time" in entries:
        local_time, wall = _local_time(entries["local_time"])
        send_at = wall.replace(tzinfo=UTC).timestamp() - _EARLIEST_OFFSET
    return Campaign(
        id=campaign_id,
        name=entries["name"].text("name") if "name" in entries else campaign_id,
        template=template,
        segment=segment,
        list=listed,
        topic=_topic(entries["topic"], topics) if "topic" in entries else None,
        sender=_sender(entries["sender"], signing_domain) if "sender" in entries else None,
        send_at=send_at,
        local_time=local_time,
        ab_test=ab_test_from_data(entries["ab_test"], templates, conversion)
        if "ab_test" in entries
        else None,
        created_at=now,
    )


def _topic(at: Located, topics: Collection[str] | None) -> str:
    topic = at.text("topic")
    if topics is not None and topic not in topics:
        at.fail(unknown_topic(topic, topics))
    return topic


def _sender(at: Located, signing_domain: str | None) -> str:
    """A From of the campaign's own, which DMARC will pass: in the signing domain or one of
    its subdomains, or the signing domain in one of the From's (relaxed alignment, RFC 7489
    §3.1.1, with the organizational domain approximated by the longer name's suffix)."""
    text = at.text("sender")
    try:
        _, addr = parse_address(text)
        domain = ascii_domain(addr.rpartition("@")[2]).lower()
    except ValueError as error:
        at.fail(f'sender is an address, e.g. "News <news@shop.example>": {error}')
    if signing_domain is not None:
        signing = ascii_domain(signing_domain).lower()
        if not (_within(domain, signing) or _within(signing, domain)):
            at.fail(
                f"{domain} is not aligned with the DKIM signing domain {signing}: receivers "
                f"that check DMARC would refuse it; send from an address at {signing}"
            )
    return text


def _within(name: str, parent: str) -> bool:
    return name == parent or name.endswith("." + parent)


def _audience(
    at: Located, segments: Collection[str], lists: Collection[str]
) -> tuple[str | None, str | None]:
    """(segment, list) of an audience; neither for every contact with an address."""
    if at.plain() == "all":
        return None, None
    entries = {key: value for key, _, value in at.pairs("audience", '{"segment": "engaged"}')}
    if len(entries) != 1 or not set(entries) <= {"segment", "list"}:
        at.fail('an audience is {"segment": "<segment id>"}, {"list": "<list>"} or "all"')
    if "list" in entries:
        name = entries["list"].text("list")
        if name not in lists:
            entries["list"].fail(
                f"no contacts are in a list named {name!r}: {suggest(name, lists)} "
                "(put them in one with mailpulse import --list)"
            )
        return None, name
    segment = entries["segment"].text("segment")
    if segment not in segments:
        entries["segment"].fail(f"no segment named {segment!r}: {suggest(segment, segments)}")
    return segment, None


def _local_time(at: Located) -> tuple[str, datetime]:
    """A wall-clock time, as written: a time zone in it would say whose clock, and the point
    is that it is every recipient's own."""
    text = at.text("local_time")
    try:
        wall = datetime.fromisoformat(text)
    except ValueError:
        at.fail("local_time is a date and a time without a zone, e.g. 2026-12-01T09:00")
    if wall.tzinfo is not None:
        at.fail("local_time is each recipient's own clock: write it without a zone")
    return wall.isoformat(timespec="minutes"), wall


def _send_at(at: Located) -> float:
    moment = epoch(at.plain())
    if moment is None:
        at.fail("send_at is a date and time, e.g. 2026-11-27T08:00:00Z, or epoch seconds")
    return moment
