"""A message's subscription links: one token per message behind the one-click URL, the
preference page and the mailto; the List-Unsubscribe headers on marketing only; a
confirmation's own link; and tokens that are forged, malformed or made for another use
refused, also when they come back in a mailto's subject."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.feedback.unsubscribe import (
    CONFIRM,
    UNSUBSCRIBE,
    MessageToken,
    SubscriptionLinks,
    read_token,
    token_in_subject,
    unsubscribe_from_subject,
)
from mailpulse.policy.consent import CONFIRM_TEMPLATE, UNSUBSCRIBED
from mailpulse.tokens import TokenError, TokenSigner
from mailpulse.types import MessageClass, SendIntent

SIGNER = TokenSigner("s" * 32)
LINKS = SubscriptionLinks(SIGNER, "https://shop.test/", "mail.shop.test")


def intent(message_class: str = MessageClass.MARKETING, **fields: object) -> SendIntent:
    values: dict = {
        "key": "campaign:sale:ann",
        "contact_id": "ann",
        "email": "ann@example.com",
        "template": "sale",
        "context": {},
        "message_class": message_class,
        "topic": "offers",
        **fields,
    }
    return SendIntent(**values)


def test_a_marketing_message_gets_both_headers_and_one_token_everywhere() -> None:
    links = LINKS.of(intent())
    url = links.context["unsubscribe_url"]
    assert url.startswith("https://shop.test/u/")
    token = url.removeprefix("https://shop.test/u/")
    assert links.context["preferences_url"] == f"https://shop.test/p/{token}"
    assert links.headers == {
        "List-Unsubscribe": (
            f"<{url}>, <mailto:unsubscribe@mail.shop.test?subject=unsubscribe%20{token}>"
        ),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert links.context["_unsubscribe_footer"] is True
    assert read_token(SIGNER, UNSUBSCRIBE, token) == MessageToken(
        "ann", "ann@example.com", "offers", "campaign:sale:ann"
    )
    assert "confirm_url" not in links.context


def test_a_transactional_message_gets_its_page_links_but_no_headers_or_footer() -> None:
    links = LINKS.of(intent(MessageClass.TRANSACTIONAL, topic=None))
    assert links.headers == {}
    assert "_unsubscribe_footer" not in links.context
    token = links.context["unsubscribe_url"].rpartition("/")[2]
    assert read_token(SIGNER, UNSUBSCRIBE, token).topic == ""


def test_a_confirmation_carries_a_confirm_link_no_unsubscribe_token_can_stand_for() -> None:
    confirmation = intent(
        MessageClass.TRANSACTIONAL, key="confirm:news:m1", template=CONFIRM_TEMPLATE, topic="news"
    )
    links = LINKS.of(confirmation)
    confirm = links.context["confirm_url"].removeprefix("https://shop.test/p/confirm/")
    assert read_token(SIGNER, CONFIRM, confirm).topic == "news"
    unsubscribe = links.context["unsubscribe_url"].rpartition("/")[2]
    with pytest.raises(TokenError):
        read_token(SIGNER, CONFIRM, unsubscribe)
    with pytest.raises(TokenError):
        read_token(SIGNER, UNSUBSCRIBE, confirm)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "no-dot",
        "!!!.???",
        "a" * 5000,
        TokenSigner("t" * 32).sign(UNSUBSCRIBE, ["ann", "ann@example.com", "", "k"]),  # another key
        SIGNER.sign(UNSUBSCRIBE, {"contact": "ann"}),  # ours, but not a message's
        SIGNER.sign(UNSUBSCRIBE, ["ann", "a@b.c", "", 7]),
        SIGNER.sign("click", ["ann", "ann@example.com", "", "k"]),  # another purpose
    ],
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(TokenError):
        read_token(SIGNER, UNSUBSCRIBE, token)


def test_a_tampered_token_is_refused() -> None:
    token = LINKS.of(intent()).context["unsubscribe_url"].rpartition("/")[2]
    data, _, mac = token.partition(".")
    forged = SIGNER.sign(UNSUBSCRIBE, ["ann", "ann@example.com", "", "k"]).partition(".")[0]
    with pytest.raises(TokenError):
        read_token(SIGNER, UNSUBSCRIBE, f"{forged}.{mac}")
    flipped = data[:-1] + ("A" if data[-1] != "A" else "B")
    with pytest.raises(TokenError):
        read_token(SIGNER, UNSUBSCRIBE, f"{flipped}.{mac}")


def test_a_mailto_unsubscribe_becomes_the_event_of_its_token() -> None:
    header = LINKS.of(intent()).headers["List-Unsubscribe"]
    subject = unquote(header.partition("subject=")[2].rstrip(">"))
    ev = unsubscribe_from_subject(SIGNER, f"Re: {subject}", at=5.0, message_id="mail-1")
    assert (ev.event, ev.contact_key, ev.message_id, ev.received_at) == (
        UNSUBSCRIBED,
        "ann",
        "mail-1",
        5.0,
    )
    assert ev.user_id is None and ev.anonymous_id is None  # mailpulse's own
    assert ev.properties == {
        "address": "ann@example.com",
        "source": "mailto",
        "key": "campaign:sale:ann",
        "topic": "offers",
    }
    for subject in ("unsubscribe", "hello", "unsubscribe abc.def"):
        with pytest.raises(TokenError):
            unsubscribe_from_subject(SIGNER, subject, at=5.0)


@given(st.text(max_size=300))
def test_any_subject_is_a_token_or_nothing_and_never_an_error(subject: str) -> None:
    found = token_in_subject(subject)
    if found is not None:
        assert found in subject
        with pytest.raises(TokenError):
            read_token(SIGNER, UNSUBSCRIBE, found)


@given(st.text(max_size=200))
def test_any_text_as_a_token_is_refused_with_a_token_error(text: str) -> None:
    with pytest.raises(TokenError):
        read_token(SIGNER, UNSUBSCRIBE, text)
