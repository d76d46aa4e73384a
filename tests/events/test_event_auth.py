"""The write key from an HTTP Basic Authorization header."""

from __future__ import annotations

import base64

import pytest

from mailpulse.events import write_key_from_basic


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (basic(b"wk_live_123:"), "wk_live_123"),
        (basic(b"wk_live_123:ignored-password"), "wk_live_123"),
        (basic(b"wk_live_123"), "wk_live_123"),
        ("basic " + base64.b64encode(b"k:").decode(), "k"),
        ("  Basic   " + base64.b64encode(b"k:").decode() + "  ", "k"),
        (basic("clé:".encode()), "clé"),
    ],
)
def test_key_is_the_user_name(header: str, key: str) -> None:
    assert write_key_from_basic(header) == key


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Basic ",
        basic(b":password-only"),
        "Bearer " + base64.b64encode(b"k:").decode(),
        "Basic !!not-base64!!",
        "Basic d2s6c",  # bad padding
        basic(b"\xff\xfe:"),  # not UTF-8
    ],
)
def test_absent_or_malformed_header_gives_none(header: str | None) -> None:
    assert write_key_from_basic(header) is None
