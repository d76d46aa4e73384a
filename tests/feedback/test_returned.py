"""Which send a returned message's headers name (feedback.returned): one, agreed on by every
header that names one, or none; signed only by a token this project made."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailpulse.delivery.mime import key_digest, make_message_id
from mailpulse.feedback.returned import ReturnedSend, returned_send
from mailpulse.feedback.unsubscribe import UNSUBSCRIBE, MessageToken
from mailpulse.tokens import TokenSigner

SIGNER = TokenSigner("s" * 40)
DOMAIN = "shop.test"
KEY = "campaign:winter:user:ana"


def unsubscribe(key: str = KEY, signer: TokenSigner = SIGNER) -> str:
    token = signer.sign(UNSUBSCRIBE, MessageToken("user:ana", "ana@example.com", "", key))
    return (
        f"<https://{DOMAIN}/u/{token}>, <mailto:unsubscribe@{DOMAIN}?subject=unsubscribe%20{token}>"
    )


def test_each_header_names_the_send_and_only_the_token_signs_it() -> None:
    digest = key_digest(KEY)
    by_id = {"message-id": make_message_id(KEY, DOMAIN)}
    assert returned_send(by_id, SIGNER, DOMAIN) == ReturnedSend(digest, signed=False)
    assert returned_send({"x-mailpulse-key": KEY}, SIGNER, DOMAIN) == ReturnedSend(digest, False)
    every = {**by_id, "x-mailpulse-key": KEY, "list-unsubscribe": unsubscribe()}
    assert returned_send(every, SIGNER, DOMAIN) == ReturnedSend(digest, signed=True)


def test_headers_that_disagree_or_are_not_ours_name_no_send() -> None:
    ours = make_message_id(KEY, DOMAIN)
    assert returned_send({"message-id": ours, "x-mailpulse-key": "other"}, SIGNER, DOMAIN) is None
    assert returned_send({"message-id": ours.replace(DOMAIN, "x.test")}, SIGNER, DOMAIN) is None
    with_other = {"message-id": ours, "list-unsubscribe": unsubscribe("other")}
    assert returned_send(with_other, SIGNER, DOMAIN) is None
    forged = {"message-id": ours, "list-unsubscribe": unsubscribe(signer=TokenSigner("t" * 40))}
    assert returned_send(forged, SIGNER, DOMAIN) is None
    assert returned_send({}, SIGNER, DOMAIN) is None


@given(
    st.dictionaries(
        st.sampled_from(["message-id", "x-mailpulse-key", "list-unsubscribe", "subject"]),
        st.text(max_size=300)
        | st.builds(lambda s: f"<https://{DOMAIN}/u/{s}>", st.from_regex(r"[\w-]+\.[\w-]+")),
    )
)
def test_any_headers_give_a_send_or_none_never_an_error(headers: dict[str, str]) -> None:
    found = returned_send(headers, SIGNER, DOMAIN)
    assert found is None or (len(found.digest) == 16 and not found.signed)
