"""Signed tokens: what mailpulse puts in links and addresses that come back to it.

An unsubscribe link, a preference page, an open pixel, a click redirect and a VERP return
path each carry a token: a payload and an HMAC-SHA256 of it under the project's secret. The
purpose is part of what is signed, so a token made for one use is refused for any other (an
open pixel's token cannot unsubscribe anyone). Nothing is stored: a token proves itself.

Two spellings: `sign` gives URL-safe base64 (links), `sign_address` lower-case base32 with a
shorter MAC, because mail servers may change the case of a local part, which holds at most
64 octets (RFC 5321 §4.5.3.1.1).

The secret comes from `MAILPULSE_SECRET`, else `[project] secret`, else (embedded mode only)
a random one kept in the data folder, created on the first start. Earlier secrets listed in
`MAILPULSE_PREVIOUS_SECRETS` (comma-separated) still verify, so a secret can be rotated
without breaking links in mail already sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

SECRET_ENV = "MAILPULSE_SECRET"
PREVIOUS_SECRETS_ENV = "MAILPULSE_PREVIOUS_SECRETS"
SECRET_FILE = "secret.key"
MIN_SECRET_LENGTH = 32  # characters: 256 bits when hex, as `secrets.token_hex(32)` makes

_LINK_MAC = 16  # bytes: 128 bits, beyond guessing, short enough for a URL
_ADDRESS_MAC = 10  # bytes: 80 bits, so that a payload still fits a 64-octet local part
_MAX_TOKEN = 4096  # characters; longer is refused before any decoding


class TokenError(ValueError):
    """A token that is malformed, or not signed by this project for this purpose."""


class TokenSigner:
    def __init__(self, secret: str, previous: Iterable[str] = ()) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the project secret must be at least {MIN_SECRET_LENGTH} characters")
        self._keys = [secret.encode(), *(p.encode() for p in previous if p)]
        # (key, purpose) → an HMAC that has read the purpose: copied for each token, as
        # messages sign several links each.
        self._started: dict[tuple[bytes, str], hmac.HMAC] = {}

    def sign(self, purpose: str, payload: Any) -> str:
        """`payload` (anything msgpack encodes) as a token for links: `<data>.<mac>`."""
        data = msgspec.msgpack.encode(payload)
        mac = self._mac(self._keys[0], purpose, data, _LINK_MAC)
        return f"{_b64(data)}.{_b64(mac)}"

    def verify(self, purpose: str, token: str) -> Any:
        """The payload of a token `sign` made for `purpose`; TokenError otherwise."""
        if len(token) > _MAX_TOKEN:
            raise TokenError("token too long")
        data_part, dot, mac_part = token.partition(".")
        if not dot:
            raise TokenError("malformed token: no signature")
        try:
            data, mac = _unb64(data_part), _unb64(mac_part)
        except (binascii.Error, ValueError):
            raise TokenError("malformed token: not base64url") from None
        return self._check(purpose, data, mac, _LINK_MAC)

    def sign_address(self, purpose: str, payload: Any) -> str:
        """A token for a mail local part: lower-case base32, MAC first, no dots."""
        data = msgspec.msgpack.encode(payload)
        mac = self._mac(self._keys[0], purpose, data, _ADDRESS_MAC)
        return base64.b32encode(mac + data).decode().rstrip("=").lower()

    def verify_address(self, purpose: str, token: str) -> Any:
        """The payload of a token `sign_address` made for `purpose`, in any case."""
        if len(token) > _MAX_TOKEN:
            raise TokenError("token too long")
        text = token.upper()
        try:
            raw = base64.b32decode(text + "=" * (-len(text) % 8))
        except (binascii.Error, ValueError):
            raise TokenError("malformed token: not base32") from None
        if base64.b32encode(raw).decode().rstrip("=") != text:  # as in _unb64
            raise TokenError("malformed token: not canonical base32")
        return self._check(purpose, raw[_ADDRESS_MAC:], raw[:_ADDRESS_MAC], _ADDRESS_MAC)

    def _check(self, purpose: str, data: bytes, mac: bytes, size: int) -> Any:
        if len(mac) != size or not any(
            hmac.compare_digest(mac, self._mac(key, purpose, data, size)) for key in self._keys
        ):
            raise TokenError("token not signed by this project for this purpose")
        try:
            return msgspec.msgpack.decode(data)
        except msgspec.DecodeError:  # signed by us, so only if the format changed
            raise TokenError("token payload unreadable") from None

    def _mac(self, key: bytes, purpose: str, data: bytes, size: int) -> bytes:
        # The purpose and a separator go first: no purpose is a prefix of another's input.
        started = self._started.get((key, purpose))
        if started is None:
            started = hmac.new(key, purpose.encode() + b"\x00", hashlib.sha256)
            self._started[key, purpose] = started
        mac = started.copy()
        mac.update(data)
        return mac.digest()[:size]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # One spelling per token: the decoder skips characters outside the alphabet and the last
    # character's unused bits, so other spellings of the same bytes would verify too.
    if _b64(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


def project_secret(configured: str, data_dir: Path | None) -> str:
    """The secret tokens are signed with (see the module docstring for where it comes from).

    Raises ValueError when there is none and no data folder to keep a new one in (a
    scale-out worker: all of them must share one, so none may invent its own)."""
    secret = os.environ.get(SECRET_ENV) or configured
    if secret:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the project secret must be at least {MIN_SECRET_LENGTH} characters; "
                "make one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )
        return secret
    if data_dir is None:
        raise ValueError(
            f"no project secret: set {SECRET_ENV} (the same on every worker) or [project] secret"
        )
    path = data_dir / SECRET_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    # Written whole under a name of its own, then linked: of two processes starting at
    # once, one link wins and both read its secret; neither can read a half-written file.
    draft = data_dir / f".{SECRET_FILE}.{os.getpid()}"
    draft.write_text(secrets.token_hex(32) + "\n")
    draft.chmod(0o600)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()


def previous_secrets() -> list[str]:
    return [s for s in os.environ.get(PREVIOUS_SECRETS_ENV, "").split(",") if s]


def signer_from_environment(configured: str, data_dir: Path | None) -> TokenSigner:
    return TokenSigner(project_secret(configured, data_dir), previous_secrets())
