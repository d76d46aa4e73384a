"""What the inbound listener decides about the mail it takes: which recipients it accepts, and
what a message arriving at them becomes in the log.

The send is the one the VERP return path names (`verp.ReturnPath`), never one the content
claims: a report about recipients other than the send's own is ignored with a logged reason,
so no message can suppress an address mailpulse did not mail from that return path. Mail to
`unsubscribe@<domain>` is a mailto unsubscribe (`feedback.unsubscribe`).

A report that lost its VERP address arrives at the bare return path (`bounces@<domain>`): its
send is the one the returned message's headers name (`feedback.returned`). Those are weaker
evidence than a signed return path: unless a token of ours in the returned List-Unsubscribe
names the send, a hard bounce is taken as soft (counted, never an immediate suppression) and
a complaint is not taken.

The SMTP conversation is `inbound.py`'s; this module never sees a socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec

from mailpulse.feedback.classify import (
    DELAYED,
    Classification,
    Decision,
    Kind,
    RecipientResult,
    classify_bytes,
)
from mailpulse.feedback.outcomes import complaint_event, failure_event, named
from mailpulse.feedback.report import subject_of
from mailpulse.feedback.returned import returned_send
from mailpulse.feedback.rules import BounceRules
from mailpulse.feedback.unsubscribe import unsubscribe_from_subject
from mailpulse.feedback.verp import ReturnPath
from mailpulse.observe import Metrics
from mailpulse.policy.suppression import canonical_address
from mailpulse.runtime.lifecycle import Lifecycle
from mailpulse.tokens import TokenError, TokenSigner
from mailpulse.types import Event, SendIntent

log = logging.getLogger("mailpulse.inbound")

UNSUBSCRIBE_LOCAL = "unsubscribe"
MAX_RECIPIENTS = 20  # RCPTs per message: a bounce has one
MAX_HEAD = 256 * 1024  # bytes of a mailto unsubscribe read for its header

# Replies (RFC 5321 §4.2, RFC 3463 codes).
NO_SUCH_MAILBOX = "550 5.1.1 No such mailbox here"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
ACCEPTED = "250 2.0.0 Accepted"
TRY_LATER = "451 4.3.0 Cannot take this message now; try again later"
NO_TOKEN = "550 5.7.1 No unsubscribe token of ours in the subject"


class Result:
    """What became of a message (the label of mailpulse_inbound_messages_total)."""

    HARD = "hard_bounce"
    SOFT = "soft_bounce"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"
    UNSUBSCRIBE = "unsubscribe"
    UNREADABLE = "not_a_report"  # neither bounce, complaint nor auto-reply
    OTHER_RECIPIENT = "other_recipient"  # claims recipients other than the send's own
    UNKNOWN_SEND = "unknown_send"  # a valid token whose send is not in the outbox
    UNSIGNED = "unsigned_report"  # out of band, naming its send by plain headers only
    BAD_TOKEN = "bad_token"  # an unsubscribe without a token of ours
    REFUSED = "refused_recipient"  # at RCPT: not one of our addresses
    ERROR = "error"


FindSend = Callable[[bytes], Awaitable[SendIntent | None]]
Append = Callable[[Sequence[Event]], Awaitable[list[Event]]]


@dataclass
class Intake:
    """`find_send`: the send whose key digest a return path carries, or None; `append`: the
    pipeline's durable append (the 250 waits for it)."""

    return_path: ReturnPath
    tokens: TokenSigner
    find_send: FindSend
    append: Append
    metrics: Metrics
    rules: BounceRules | None = None
    clock: Callable[[], float] = time.time
    message_id_domain: str = ""  # the domain of our Message-IDs, which out-of-band reports name

    def recipient_refusal(self, address: str, accepted: int) -> str | None:
        """None when `address` may receive mail here; else the SMTP reply refusing it."""
        if accepted >= MAX_RECIPIENTS:
            return TOO_MANY_RECIPIENTS
        if self._is_unsubscribe(address) or self.return_path.is_bare(address):
            return None
        if self.return_path.digest_in(address) is not None:
            return None
        self.metrics.inbound_messages.labels(Result.REFUSED).inc()
        log.info("refused recipient %r: not a return path of ours with a valid token", address)
        return NO_SUCH_MAILBOX

    async def receive(self, recipients: Sequence[str], data: bytes, peer: str = "") -> str:
        """Take one message for accepted `recipients`: its events durable before the reply
        says 250. A failure of our own is a 451 (the sender tries again; events are named by
        their content, so a second delivery adds nothing)."""
        try:
            classified: Classification | None = None
            events: list[Event] = []
            for address in recipients:
                if self._is_unsubscribe(address):
                    event = self._unsubscribe(data, peer)
                    if event is None:
                        return NO_TOKEN
                    events.append(event)
                    continue
                if classified is None:
                    classified = await asyncio.to_thread(classify_bytes, data, self.rules)
                signed = True
                digest = self.return_path.digest_in(address)
                if digest is None and self.return_path.is_bare(address):
                    returned = returned_send(
                        classified.original_headers, self.tokens, self.message_id_domain
                    )
                    if returned is None:
                        why = f"out-of-band report at {address}: it returns no message of ours"
                        self._note(Result.UNKNOWN_SEND, why, peer)
                        continue
                    digest, signed = returned.digest, returned.signed
                if digest is None:  # checked at RCPT; a token that stopped verifying (rotation)
                    continue
                send = await self.find_send(digest)
                if send is None:
                    self._note(Result.UNKNOWN_SEND, f"no send for return path {address}", peer)
                    continue
                events += self._about(send, classified, peer, signed=signed)
            if events:
                await self.append(events)
            return ACCEPTED
        except Exception:
            self.metrics.inbound_messages.labels(Result.ERROR).inc()
            log.exception("could not take a message from %s; asked to try again", peer or "?")
            return TRY_LATER

    # -- the send's own --------------------------------------------------------------------

    def _about(
        self, send: SendIntent, found: Classification, peer: str, *, signed: bool = True
    ) -> list[Event]:
        """The events a classified message makes for its send: none when it is not about it.
        `signed`: its send is named by something of ours nobody else can write (the VERP
        token, a signed List-Unsubscribe token); else it decides less (see the docstring)."""
        key = send.key
        if found.original_key and found.original_key != key:
            why = f"report at {key}'s return path ignored: it returns {found.original_key!r}"
            self._note(Result.OTHER_RECIPIENT, why, peer)
            return []
        if found.kind == Kind.AUTO_REPLY:
            self._note(Result.AUTO_REPLY, f"auto-reply about {key}: not a bounce", peer)
            return []
        if found.kind not in (Kind.BOUNCE, Kind.COMPLAINT, Kind.DELIVERED):
            self._note(Result.UNREADABLE, f"mail about {key} ignored: no report in it", peer)
            return []
        mine = _own(send, found.recipients)
        if mine is None:
            claimed = ", ".join(sorted({r.address for r in found.recipients if r.address}))
            why = f"report about {key} ignored: it names {claimed[:500]}, not its recipient"
            self._note(Result.OTHER_RECIPIENT, why, peer)
            return []
        if not signed and found.kind == Kind.COMPLAINT:
            why = f"complaint about {key} not taken: out of band, its send named by plain headers"
            self._note(Result.UNSIGNED, why, peer)
            return []
        if not signed and mine.decision == Decision.HARD:
            log.info("hard bounce of %s taken as soft: out of band, unsigned", key)
            mine = msgspec.structs.replace(mine, decision=Decision.SOFT)
        if found.kind == Kind.COMPLAINT:
            self._note(Result.COMPLAINT, f"{found.feedback_type} complaint about {key}", peer)
            return [self._complaint(send, found)]
        if mine.decision == Decision.NONE:
            self._note(Result.DELIVERED, f"success report about {key}", peer)
            return []
        if mine.action == DELAYED:
            self._note(Result.DELAYED, f"delay report about {key} ({mine.status})", peer)
            return [self._event(Lifecycle.DEFERRED, send, found, mine)]
        result = Result.HARD if mine.decision == Decision.HARD else Result.SOFT
        self._note(result, f"{mine.decision} bounce of {key} ({mine.status})", peer)
        return [self._event(Lifecycle.BOUNCED, send, found, mine)]

    def _event(
        self, kind: Lifecycle, send: SendIntent, found: Classification, mine: RecipientResult
    ) -> Event:
        event = failure_event(kind, send, mine, source=found.source, at=self.clock())
        return self._named(event)

    def _complaint(self, send: SendIntent, found: Classification) -> Event:
        event = complaint_event(
            send,
            feedback_type=found.feedback_type,
            user_agent=found.user_agent,
            source=found.source,
            at=self.clock(),
        )
        return self._named(event)

    @staticmethod
    def _named(event: Event) -> Event:
        """Named by what it says: the same report delivered twice is one event (the log drops
        the second), a delay report and the failure after it are two."""
        return named(event, "in", msgspec.json.encode([event.event, event.properties]))

    # -- mailto unsubscribes -----------------------------------------------------------------

    def _is_unsubscribe(self, address: str) -> bool:
        local, _, _ = address.strip().strip("<>").rpartition("@")
        return local.lower() == UNSUBSCRIBE_LOCAL and self.return_path.is_ours(address)

    def _unsubscribe(self, data: bytes, peer: str) -> Event | None:
        """The Unsubscribed event of a mail to unsubscribe@, named by its header (the same
        mail delivered twice unsubscribes once); None when its subject has no token of ours."""
        head = data[:MAX_HEAD].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        try:
            event = unsubscribe_from_subject(
                self.tokens,
                subject_of(head),
                at=self.clock(),
                message_id=f"mailto:{hashlib.blake2b(head, digest_size=16).hexdigest()}",
            )
        except TokenError as exc:
            self._note(Result.BAD_TOKEN, f"mailto unsubscribe refused: {exc}", peer)
            return None
        self._note(Result.UNSUBSCRIBE, "mailto unsubscribe", peer)
        return event

    def _note(self, result: str, why: str, peer: str) -> None:
        self.metrics.inbound_messages.labels(result).inc()
        log.info("%s (from %s)", why, peer or "?")


def _own(send: SendIntent, reported: Sequence[RecipientResult]) -> RecipientResult | None:
    """The report's recipient that is the send's: one naming its address (as final or
    original recipient); or, when the report names nobody, its only recipient. None when it
    names only others."""
    own = canonical_address(send.email)[0]
    named = [r for r in reported if r.address or r.original_address]
    for found in named:
        if own in {canonical_address(a)[0] for a in (found.address, found.original_address) if a}:
            return found
    unnamed = [r for r in reported if not (r.address or r.original_address)]
    return unnamed[0] if not named and unnamed else None
