"""What a lookup of a domain's mail hosts answers, and where it asks: the values of the
resolver in mx.py, kept apart from it so that what only names them (the project's settings,
the shaping rules, a courier that relays) does not load dnspython: 3.4 MB in a courier, ~5
MB in the server.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


class LookupFailed(Exception):
    """DNS gave no answer either way (timeout, SERVFAIL, no resolver): try again later."""


@dataclass(frozen=True)
class MailHosts:
    """Where a domain's mail goes: `hosts` by preference; none when the domain does not
    exist or has neither MX nor address; `null` for a null MX."""

    hosts: tuple[str, ...]
    null: bool = False


def nameserver(text: str) -> tuple[str, int]:
    """`"127.0.0.1:5353"`, `"[::1]:53"` or a bare address (port 53). ValueError otherwise."""
    written = text.strip()
    host, port = written, "53"
    if written.startswith("["):
        host, _, rest = written[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: write '[address]:port'")
            port = rest[1:]
    elif written.count(":") == 1:
        host, _, port = written.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: a nameserver is an IP address, e.g. '127.0.0.1:53'") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port)
