"""Dashboard sessions over a real key ring (SQLite access store): a key of scope read or admin
opens one, the cookie names the key by digest only, and a session ends when it expires, when
its key is revoked or no longer the project's, or when it was signed for something else."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.access import KeyRing, ProjectKeys, Scope, SqliteAccessStore
from mailpulse.observe.dashboard_session import (
    COOKIE,
    LIFETIME,
    PURPOSE,
    DashboardSessions,
    SessionRefused,
    cookie_from,
)
from mailpulse.tokens import TokenSigner

ADMIN = "project-admin-key"
SIGNER = TokenSigner(secrets.token_hex(32))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def keys(tmp_path: Path) -> AsyncIterator[KeyRing]:
    store = SqliteAccessStore(tmp_path / "access.db")
    await store.open()
    ring = KeyRing(store, ProjectKeys(["write-key"], [], ADMIN))
    await ring.refresh()
    yield ring
    await store.close()


async def test_a_session_lasts_its_lifetime_and_names_no_key(keys: KeyRing) -> None:
    clock = Clock()
    sessions = DashboardSessions(SIGNER, keys, clock)
    cookie, principal = sessions.open(f"  {ADMIN}\n")
    assert principal.label == "project admin key" and ADMIN not in cookie
    assert sessions.principal(cookie) == principal
    clock.now += LIFETIME - 1
    assert sessions.principal(cookie) == principal
    clock.now += 1
    with pytest.raises(SessionRefused, match="expired"):
        sessions.principal(cookie)


async def test_scoped_keys_read_yes_write_no_revoked_ends(keys: KeyRing) -> None:
    sessions = DashboardSessions(SIGNER, keys)
    reader, record = await keys.create(Scope.READ, "dashboard")
    writer, _ = await keys.create(Scope.WRITE, "app")
    cookie, principal = sessions.open(reader)
    assert principal.scope == "read"
    for key, said in (("", "enter an admin key"), ("nope", "unknown key"), (writer, "scope")):
        with pytest.raises(SessionRefused, match=said):
            sessions.open(key)
    with pytest.raises(SessionRefused, match="scope read or admin"):
        sessions.open("write-key")
    await keys.revoke(record.id)
    with pytest.raises(SessionRefused, match="revoked"):
        sessions.principal(cookie)
    with pytest.raises(SessionRefused, match="revoked"):
        sessions.open(reader)


async def test_a_changed_admin_key_ends_its_sessions(keys: KeyRing, tmp_path: Path) -> None:
    cookie, _ = DashboardSessions(SIGNER, keys).open(ADMIN)
    store = SqliteAccessStore(tmp_path / "other.db")
    await store.open()
    try:
        changed = KeyRing(store, ProjectKeys([], [], "a-new-admin-key"))
        await changed.refresh()
        with pytest.raises(SessionRefused, match="no longer known"):
            DashboardSessions(SIGNER, changed).principal(cookie)
    finally:
        await store.close()


async def test_forged_cookies(keys: KeyRing) -> None:
    sessions = DashboardSessions(SIGNER, keys)
    cookie, _ = sessions.open(ADMIN)
    other_secret = TokenSigner(secrets.token_hex(32))
    for forged in (
        None,
        "",
        "x" * 5000,
        cookie[:-1] + ("A" if cookie[-1] != "A" else "B"),
        other_secret.sign(PURPOSE, [b"\x00" * 32, 2e9]),  # another project's secret
        SIGNER.sign("unsubscribe", [b"\x00" * 32, 2e9]),  # ours, for another purpose
        SIGNER.sign(PURPOSE, ["digest as text", 2e9]),  # ours, of another shape
        SIGNER.sign(PURPOSE, [b"\x00" * 32, 2e9]),  # ours, naming no key
    ):
        with pytest.raises(SessionRefused):
            sessions.principal(forged)


@given(st.text())
def test_any_cookie_header_is_read_without_error(header: str) -> None:
    found = cookie_from(header)
    assert found is None or f"{COOKIE}={found}" in header


def test_the_session_cookie_among_others() -> None:
    assert cookie_from(f"a=1; {COOKIE}=abc.def; b=2") == "abc.def"
    assert cookie_from(f"x{COOKIE}=no; {COOKIE}x=no") is None
