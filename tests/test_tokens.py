import os
import stat
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.tokens import (
    SECRET_ENV,
    SECRET_FILE,
    TokenError,
    TokenSigner,
    project_secret,
)

SECRET = "s" * 40
payloads = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(payloads)
def test_a_link_token_gives_back_its_payload(payload: object) -> None:
    signer = TokenSigner(SECRET)
    assert signer.verify("unsubscribe", signer.sign("unsubscribe", payload)) == payload


@given(payloads)
def test_an_address_token_survives_any_change_of_case(payload: object) -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign_address("return", payload)
    assert set(token) <= set(string.ascii_lowercase + "234567")
    assert signer.verify_address("return", token.upper()) == payload


def test_a_token_for_one_purpose_is_refused_for_another() -> None:
    signer = TokenSigner(SECRET)
    with pytest.raises(TokenError, match="this purpose"):
        signer.verify("unsubscribe", signer.sign("open", ["k"]))
    with pytest.raises(TokenError, match="this purpose"):
        signer.verify_address("unsubscribe", signer.sign_address("return", ["k"]))


def test_another_projects_token_is_refused() -> None:
    token = TokenSigner("t" * 40).sign("open", ["k"])
    with pytest.raises(TokenError, match="not signed"):
        TokenSigner(SECRET).verify("open", token)


@given(st.integers(0, 200), st.sampled_from("AB-_x0"))
def test_a_changed_character_is_refused(at: int, char: str) -> None:
    signer = TokenSigner(SECRET)
    token = signer.sign("open", {"key": "campaign:winter:r1", "url": 3})
    at %= len(token)
    tampered = token[:at] + char + token[at + 1 :]
    if tampered == token:
        return
    with pytest.raises(TokenError):
        signer.verify("open", tampered)


def test_another_spelling_of_the_same_bytes_is_refused() -> None:
    # The last character of a 16-byte MAC in base64 carries 2 bits and 4 unused ones, and
    # that of 10 + 3 bytes in base32 4 bits and 1 unused: a lenient decoder reads the same
    # bytes from each of their spellings.
    b64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    b32 = string.ascii_lowercase + "234567"
    signer = TokenSigner(SECRET)
    token, address = signer.sign("click", [1]), signer.sign_address("r", [1, 2])
    used = b64.index(token[-1]) & 0b110000
    for other in (b64[used | unused] for unused in range(16)):
        if other != token[-1]:
            with pytest.raises(TokenError, match="malformed"):
                signer.verify("click", token[:-1] + other)
    assert len(address) == 21  # 13 bytes in 21 characters: 1 bit of the last unused
    other = b32[b32.index(address[-1]) ^ 1]
    with pytest.raises(TokenError, match="malformed"):
        signer.verify_address("r", address[:-1] + other)


@pytest.mark.parametrize("token", ["", "abc", ".", "a.b.c", "!!!.???", "x" * 5000])
def test_garbage_is_a_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        TokenSigner(SECRET).verify("open", token)
    with pytest.raises(TokenError):
        TokenSigner(SECRET).verify_address("open", token)


def test_a_rotated_secret_still_verifies_what_it_signed() -> None:
    old = TokenSigner("o" * 40).sign("open", ["k"])
    assert TokenSigner(SECRET, previous=["o" * 40]).verify("open", old) == ["k"]
    # New tokens are signed with the current secret only.
    fresh = TokenSigner(SECRET, previous=["o" * 40]).sign("open", ["k"])
    with pytest.raises(TokenError):
        TokenSigner("o" * 40).verify("open", fresh)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        TokenSigner("short")


def test_embedded_mode_makes_a_secret_once_and_keeps_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    first = project_secret("", tmp_path / "data")
    assert len(first) == 64
    assert project_secret("", tmp_path / "data") == first
    mode = (tmp_path / "data" / SECRET_FILE).stat().st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert os.listdir(tmp_path / "data") == [SECRET_FILE]


def test_the_environment_wins_over_the_project_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "e" * 40)
    assert project_secret("p" * 40, tmp_path) == "e" * 40
    monkeypatch.delenv(SECRET_ENV)
    assert project_secret("p" * 40, tmp_path) == "p" * 40
    assert not (tmp_path / SECRET_FILE).exists()


def test_a_worker_without_a_secret_is_told_where_to_set_one(monkeypatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ValueError, match="MAILPULSE_SECRET"):
        project_secret("", None)
    with pytest.raises(ValueError, match="at least 32"):
        project_secret("too short", None)
