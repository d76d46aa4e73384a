"""The links a message carries back to its recipient's subscriptions, and what they prove.

Every message gets one token, signed for `unsubscribe` (mailpulse.tokens) over the contact,
the address it went to, its topic and its send key: the one-click URL `{url}/u/{token}`, the
preference page `{url}/p/{token}` and the `mailto:unsubscribe@{return-path domain}` whose
subject carries the same token all rest on it. A marketing message also carries them as
`List-Unsubscribe` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058, RFC
2369), which the DKIM signature covers. A double opt-in confirmation email carries a second
token, signed for `confirm`, in `{url}/p/confirm/{token}`.

The inbound mail listener turns a mailto unsubscribe into its lifecycle event with
`unsubscribe_from_subject`; the public pages (mailpulse.feedback.pages) read tokens with
`read_token`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from mailpulse.policy.consent import MAILTO, is_confirmation, unsubscribed_event
from mailpulse.render.footer import FOOTER_VARIABLE
from mailpulse.tokens import TokenError, TokenSigner
from mailpulse.types import Event, MessageClass, SendIntent

UNSUBSCRIBE, CONFIRM = "unsubscribe", "confirm"  # token purposes
UNSUBSCRIBE_PATH, PREFERENCES_PATH, CONFIRM_PATH = "/u/", "/p/", "/p/confirm/"
ONE_CLICK_POST = "List-Unsubscribe=One-Click"  # the List-Unsubscribe-Post value
# The subject of a mailto unsubscribe: the word, then the token (a mail client may prefix
# "Re:" or "Fwd:" and fold the line).
_SUBJECT = re.compile(r"\bunsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", re.IGNORECASE)


class MessageToken(msgspec.Struct, array_like=True, frozen=True):
    """Who a message went to and what it was: the contact, the address, its topic ('' for
    none: an unsubscribe from it is from all marketing) and its send key. The purpose it is
    signed for says what it may do."""

    contact_id: str
    address: str
    topic: str
    key: str


@dataclass(frozen=True)
class MessageLinks:
    """What one message gets: template variables and header fields."""

    context: dict[str, Any]
    headers: dict[str, str]


NO_LINKS = MessageLinks({}, {})  # a message made without tokens (a test's): none at all


class SubscriptionLinks:
    """Makes each message's links; one per process, for every message it makes."""

    def __init__(self, tokens: TokenSigner, base_url: str, mail_domain: str) -> None:
        """`base_url`: the project's (`https://shop.example`); `mail_domain`: the return
        path's, where `unsubscribe@` is received."""
        self._tokens = tokens
        self._base = base_url.rstrip("/")
        self._mailto = f"mailto:unsubscribe@{mail_domain}?subject=unsubscribe%20"

    def of(self, intent: SendIntent) -> MessageLinks:
        """The links of one message: one signature, whatever it shows them in."""
        said = MessageToken(intent.contact_id, intent.email, intent.topic or "", intent.key)
        token = self._tokens.sign(UNSUBSCRIBE, said)
        unsubscribe_url = self._base + UNSUBSCRIBE_PATH + token
        context: dict[str, Any] = {
            "unsubscribe_url": unsubscribe_url,
            "preferences_url": self._base + PREFERENCES_PATH + token,
        }
        headers: dict[str, str] = {}
        if intent.message_class == MessageClass.MARKETING:
            context[FOOTER_VARIABLE] = True
            headers["List-Unsubscribe"] = f"<{unsubscribe_url}>, <{self._mailto}{token}>"
            headers["List-Unsubscribe-Post"] = ONE_CLICK_POST
        if is_confirmation(intent):
            context["confirm_url"] = self._base + CONFIRM_PATH + self._tokens.sign(CONFIRM, said)
        return MessageLinks(context, headers)


def read_token(tokens: TokenSigner, purpose: str, token: str) -> MessageToken:
    """What a token of `purpose` (UNSUBSCRIBE, CONFIRM) says; TokenError unless this project
    signed it for that purpose."""
    payload = tokens.verify(purpose, token)
    try:
        return msgspec.convert(payload, MessageToken)
    except msgspec.ValidationError:
        raise TokenError("token payload is not a message's") from None


def token_in_subject(subject: str) -> str | None:
    """The token of a mailto unsubscribe's subject (`unsubscribe <token>`), if it has one."""
    found = _SUBJECT.search(subject)
    return found.group(1) if found else None


def unsubscribe_from_subject(
    tokens: TokenSigner, subject: str, *, at: float, message_id: str = ""
) -> Event:
    """The `Unsubscribed` event a mail to the mailto address asks for, from its subject: the
    recipient of the message the token names, from its topic (or all marketing). Raises
    TokenError for a subject without a token, or with one this project did not sign.
    `message_id`: the event's, e.g. derived from the mail's Message-ID so that a mail
    received twice unsubscribes once; a fresh one by default."""
    token = token_in_subject(subject)
    if token is None:
        raise TokenError("no unsubscribe token in the subject")
    link = read_token(tokens, UNSUBSCRIBE, token)
    return unsubscribed_event(
        link.contact_id,
        link.address,
        link.topic,
        source=MAILTO,
        at=at,
        key=link.key,
        message_id=message_id,
    )
