"""The dashboard's session: a browser cannot send `Authorization: Bearer` when it navigates, so
a key of scope read or admin, posted once to the login form, is exchanged for a cookie.

The cookie is a token (mailpulse.tokens) of its own purpose holding the key's SHA-256, never
the key, and when it expires. It is checked against the keys in force at every request, so a
revoked key or a changed admin key ends its sessions within the key ring's refresh; it is
HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mailpulse.access import KeyRing, Principal
from mailpulse.access.keys import digest_of
from mailpulse.tokens import TokenError, TokenSigner

COOKIE = "mailpulse_session"
PURPOSE = "dashboard-session"
LIFETIME = 8 * 3600.0  # seconds: a working day, then the key is asked for again


class SessionRefused(Exception):
    """Why a key or a session does not open the dashboard (shown on the login page)."""


class DashboardSessions:
    def __init__(
        self, tokens: TokenSigner, keys: KeyRing, clock: Callable[[], float] = time.time
    ) -> None:
        self._tokens, self._keys, self._clock = tokens, keys, clock

    def open(self, key: str) -> tuple[str, Principal]:
        """The cookie's value for a key of scope read or admin, or SessionRefused."""
        key = key.strip()
        if not key:
            raise SessionRefused("enter an admin key (scope read or admin)")
        principal = self._keys.find(key)
        if principal is None:
            raise SessionRefused("unknown key")
        self._check(principal)
        value = self._tokens.sign(PURPOSE, [digest_of(key), self._clock() + LIFETIME])
        return value, principal

    def principal(self, cookie: str | None) -> Principal:
        """Who a session cookie stands for, or SessionRefused."""
        if not cookie:
            raise SessionRefused("not signed in")
        try:
            payload = self._tokens.verify(PURPOSE, cookie)
        except TokenError:
            raise SessionRefused("the session is not valid: sign in again") from None
        match payload:
            case [bytes() as digest, float() | int() as expires]:
                pass
            case _:
                raise SessionRefused("the session is not valid: sign in again")
        if expires <= self._clock():
            raise SessionRefused("the session expired: sign in again")
        principal = self._keys.find_digest(digest)
        if principal is None:
            raise SessionRefused("the session's key is no longer known: sign in again")
        self._check(principal)
        return principal

    @staticmethod
    def _check(principal: Principal) -> None:
        if principal.revoked:
            raise SessionRefused(f"{principal.label} was revoked")
        if not principal.may_read():
            raise SessionRefused(
                f"{principal.label} has scope {principal.scope}: the dashboard needs a key of "
                "scope read or admin"
            )


def cookie_from(header: str) -> str | None:
    """The session cookie's value in a Cookie header, if it has one."""
    for part in header.split(";"):
        name, eq, value = part.strip().partition("=")
        if eq and name == COOKIE:
            return value
    return None
