"""VERP return paths: each message's envelope sender names its send, so a bounce says whose
it is by the address it comes back to, whatever its content claims.

`<prefix>-<token>@<domain>`, from the project's `[sender] return_path` (`bounces@shop.example`
→ `bounces-<token>@shop.example`). The token is `TokenSigner.sign_address("return", digest)`
(case-insensitive base32, so a server that changes the case of the local part does no harm),
over the send's key digest (`delivery.mime.key_digest`), the same 128 bits its Message-ID
carries: the same send has the same return path on every retry, and the digest finds the
send's outbox row by its Message-ID. 45 characters of token leave the prefix 18 of the 64
octets a local part may hold (RFC 5321 §4.5.3.1.1).
"""

from __future__ import annotations

from email.utils import parseaddr

from mailpulse.delivery.mime import KEY_DIGEST
from mailpulse.tokens import TokenError, TokenSigner

PURPOSE = "return"
MAX_LOCAL_PART = 64  # octets, RFC 5321 §4.5.3.1.1
# base32 of a 10-byte MAC, a msgpack bin header (2 bytes) and the digest, unpadded.
TOKEN_LENGTH = -(-(10 + 2 + KEY_DIGEST) * 8 // 5)
MAX_PREFIX = MAX_LOCAL_PART - 1 - TOKEN_LENGTH


def split_return_path(return_path: str) -> tuple[str, str]:
    """The local part and the domain of `[sender] return_path` (`Bounces <b@x>` too)."""
    local, _, domain = parseaddr(return_path)[1].rpartition("@")
    return local, domain


def prefix_problem(return_path: str) -> str | None:
    """Why `return_path` cannot carry a VERP token, or None."""
    local, domain = split_return_path(return_path)
    if not local or not domain:
        return f"{return_path!r} is not an address"
    if len(local.encode()) > MAX_PREFIX:
        return (
            f"its local part {local!r} is {len(local.encode())} octets; a return path carries a "
            f"{TOKEN_LENGTH}-character token after it and a local part holds at most "
            f"{MAX_LOCAL_PART}: keep it to {MAX_PREFIX}"
        )
    return None


class ReturnPath:
    """Makes and reads the return paths of one project."""

    def __init__(self, tokens: TokenSigner, return_path: str) -> None:
        local, domain = split_return_path(return_path)
        self._tokens = tokens
        self.prefix = local
        self.domain = domain
        self._start = f"{local.lower()}-"

    def address(self, digest: bytes) -> str:
        """The return path of the send whose key digest is `digest`."""
        return f"{self.prefix}-{self._tokens.sign_address(PURPOSE, digest)}@{self.domain}"

    def digest_in(self, address: str) -> bytes | None:
        """The send's key digest, when `address` is one of our return paths whose token this
        project signed; None for anything else."""
        local, _, domain = address.strip().strip("<>").rpartition("@")
        if domain.lower().rstrip(".") != self.domain.lower() or not local.lower().startswith(
            self._start
        ):
            return None
        token = local[len(self._start) :]
        if len(token) != TOKEN_LENGTH:
            return None
        try:
            digest = self._tokens.verify_address(PURPOSE, token)
        except TokenError:
            return None
        return digest if isinstance(digest, bytes) and len(digest) == KEY_DIGEST else None

    def is_bare(self, address: str) -> bool:
        """Whether `address` is the return path without a token (`bounces@shop.example`),
        where out-of-band reports that lost their VERP address arrive."""
        local = address.strip().strip("<>").rpartition("@")[0]
        return local.lower() == self.prefix.lower() and self.is_ours(address)

    def is_ours(self, address: str) -> bool:
        """Whether `address` is at the return path's domain at all."""
        return address.strip().strip("<>").rpartition("@")[2].lower().rstrip(".") == (
            self.domain.lower()
        )
