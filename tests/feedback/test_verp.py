"""VERP return paths: every message's envelope sender names its send with a signed token, the
same on every retry and within the 64 octets of a local part; anything else, forged or
altered, names no send."""

from __future__ import annotations

import string
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.delivery.mime import key_digest, make_message_id, message_id_of
from mailpulse.feedback.verp import MAX_PREFIX, ReturnPath, prefix_problem
from mailpulse.project import load_project
from mailpulse.runtime.courier_parts import message_factory
from mailpulse.tokens import TokenSigner
from mailpulse.types import SendIntent

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
SIGNER = TokenSigner("s" * 40)
LONG_KEY = "campaign:winter-sale-2024-final-reminder:user:" + "x" * 200


@given(st.text(min_size=1, max_size=300))
def test_any_key_gives_a_return_path_that_fits_and_reads_back(key: str) -> None:
    path = ReturnPath(SIGNER, "bounces@shop.example.com")
    address = path.address(key_digest(key))
    local, _, domain = address.partition("@")
    assert domain == "shop.example.com"
    assert len(local) <= 64 and set(local) <= set(string.ascii_lowercase + "234567-")
    assert path.digest_in(address) == key_digest(key)
    # Servers may change the case of the local part, or add angle brackets.
    assert path.digest_in(f"<{address.upper()}>") == key_digest(key)


def test_the_digest_is_the_one_the_message_id_carries() -> None:
    digest = key_digest(LONG_KEY)
    assert message_id_of(digest, "shop.example.com") == make_message_id(
        LONG_KEY, "shop.example.com"
    )


@pytest.mark.parametrize(
    "address",
    [
        "bounces@shop.example.com",
        "unsubscribe@shop.example.com",
        "bounces-@shop.example.com",
        "bounces-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@shop.example.com",
        "postmaster@shop.example.com",
        "",
        "@",
        "not an address",
    ],
)
def test_what_is_not_a_signed_return_path_names_no_send(address: str) -> None:
    assert ReturnPath(SIGNER, "bounces@shop.example.com").digest_in(address) is None


def test_a_token_from_another_project_or_domain_or_altered_names_no_send() -> None:
    ours = ReturnPath(SIGNER, "bounces@shop.example.com")
    address = ours.address(key_digest("k"))
    theirs = ReturnPath(TokenSigner("t" * 40), "bounces@shop.example.com")
    assert theirs.digest_in(address) is None
    assert ours.digest_in(address.replace("shop.example.com", "other.example.com")) is None
    local = address.split("@")[0]
    flipped = local[:-1] + ("a" if local[-1] != "a" else "b")
    assert ours.digest_in(f"{flipped}@shop.example.com") is None
    # A token signed for another purpose (an unsubscribe's) is not a return path's.
    other = SIGNER.sign_address("unsubscribe", key_digest("k"))
    assert ours.digest_in(f"bounces-{other}@shop.example.com") is None


def test_a_return_path_with_too_long_a_local_part_is_named() -> None:
    assert prefix_problem("bounces@shop.example.com") is None
    assert prefix_problem("b" * MAX_PREFIX + "@x.example") is None
    problem = prefix_problem("b" * (MAX_PREFIX + 1) + "@x.example")
    assert problem is not None and f"keep it to {MAX_PREFIX}" in problem


def test_each_message_goes_out_from_its_sends_return_path_on_every_try() -> None:
    project = load_project(SHOP)
    factory = message_factory(project, tokens=SIGNER)
    send = SendIntent(
        key=LONG_KEY,
        contact_id="user:1",
        email="ann@example.org",
        template="welcome",
        context={"contact": {"first_name": "Ann", "email": "ann@example.org"}},
    )
    first, _, _ = factory.make(send)
    again, _, _ = factory.make(send)
    other, _, _ = factory.make(msgspec.structs.replace(send, key="another"))
    assert first.mail_from == again.mail_from != other.mail_from
    assert first.mail_from.startswith("bounces-") and first.mail_from.endswith("@shop.example.com")
    path = ReturnPath(SIGNER, project.config.sender.return_path)
    assert path.digest_in(first.mail_from) == key_digest(LONG_KEY)
