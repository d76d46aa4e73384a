"""Mail addresses as they go into headers and SMTP commands: parsed once, domains in IDNA form.

Addresses come from config (`"Shop <news@shop.example>"`) and from contacts (`ann@bücher.de`).
The wire wants ASCII without SMTPUTF8, so a non-ASCII domain becomes punycode and a non-ASCII
local part is refused. Anything with a line break is refused: it could inject a header or an
SMTP command.
"""

from __future__ import annotations

import re
from functools import lru_cache

import idna

# The shapes we accept: `addr-spec` or `display-name <addr-spec>`. Group syntax, comments and
# address lists are not ours to send to, so they stay out instead of being half-understood.
_NAMED = re.compile(r"\s*(.*?)\s*<([^<>\s]*)>\s*", re.DOTALL)
_ADDR_SPEC = re.compile(r'[^\s<>()\[\],;:"\\@]+@[^\s<>()\[\],;:"\\@]+')
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")


def parse_address(text: str) -> tuple[str, str]:
    """`(display_name, addr_spec)` from `"Name <a@b>"`, `'"Doe, Ann" <a@b>'` or bare `a@b`.

    The addr-spec is returned as written (its domain may still be Unicode); the display name
    has its quotes and backslash escapes removed. Raises ValueError for anything else.
    """
    if "\r" in text or "\n" in text:
        raise ValueError(f"line break in address {text!r}")
    named = _NAMED.fullmatch(text)
    if named:
        name, addr = named.group(1), named.group(2)
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
        elif "<" in name or ">" in name or '"' in name:
            raise ValueError(f"not one address: {text!r}")
    else:
        name, addr = "", text.strip()
    if not _ADDR_SPEC.fullmatch(addr):
        raise ValueError(f"not an address: {text!r}")
    return name, addr


@lru_cache(maxsize=4096)
def ascii_domain(domain: str) -> str:
    """The domain as it goes on the wire: IDNA 2008 (UTS #46 mapped) for a non-ASCII name."""
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as err:
        raise ValueError(f"not a valid international domain name {domain!r}: {err}") from None


def ascii_addr_spec(addr: str) -> str:
    """`local@domain` with the domain in IDNA form; raises ValueError for a non-ASCII local part.

    Local parts are limited to dot-atom text: quoted local parts are legal but so rare in
    marketing lists that refusing them is safer than quoting them wrong.
    """
    local, _, domain = addr.rpartition("@")
    if not local or not domain:
        raise ValueError(f"not an address: {addr!r}")
    if not _LOCAL_PART.fullmatch(local):
        raise ValueError(
            f"local part of {addr!r} needs SMTPUTF8 or quoting, which mailpulse does not send"
        )
    return f"{local}@{ascii_domain(domain)}"
