"""RFC 5322 messages built straight to bytes: the hot path makes no `email.message` objects.

The output is a pure function of its inputs (the boundary derives from the Message-ID), so a
message re-built after a crash is byte-identical to the first one.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Mapping
from functools import lru_cache

from mailpulse.delivery import headers as h
from mailpulse.delivery.address import ascii_addr_spec, ascii_domain, parse_address
from mailpulse.types import RenderedContent

__all__ = ["build_message", "key_digest", "make_message_id", "message_id_of", "parse_address"]

# Fields build_message writes itself; an extra header of the same name would make a second one.
_OWN_FIELDS = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
_PART_HEAD = b"Content-Type: text/%s; charset=utf-8\r\nContent-Transfer-Encoding: %s\r\n\r\n"
_LONGEST_LINE = 998  # RFC 5322 §2.1.1, without the CRLF


KEY_DIGEST = 16  # bytes


def key_digest(key: str) -> bytes:
    """What names a send in its Message-ID and its return path: the first 128 bits of the
    SHA-256 of its idempotency key."""
    return hashlib.sha256(key.encode("utf-8")).digest()[:KEY_DIGEST]


def make_message_id(key: str, domain: str) -> str:
    """`<hex@domain>` from the send's idempotency key: a re-send carries the same Message-ID."""
    return message_id_of(key_digest(key), domain)


def message_id_of(digest: bytes, domain: str) -> str:
    """The Message-ID of the send whose `key_digest` is `digest`."""
    return f"<{digest.hex()}@{ascii_domain(domain)}>"


@lru_cache(maxsize=256)
def _address_field(name: str, address: str) -> str:
    display_name, addr_spec = parse_address(address)
    return h.mailbox(name, display_name, ascii_addr_spec(addr_spec))


def _to_field(address: str) -> str:
    # Recipients rarely repeat, so this skips the cache the sender's address uses.
    display_name, addr_spec = parse_address(address)
    return h.mailbox("To", display_name, ascii_addr_spec(addr_spec))


def _extra_field(name: str, value: str) -> str:
    h.check_name(name)
    if name.lower() in _OWN_FIELDS:
        raise ValueError(f"header {name} is written by build_message; do not pass it")
    value = h.single_line(value)
    if value.isascii():
        # Kept literal: structured fields like List-Unsubscribe must not become encoded words.
        return h.fold(name, value)
    return h.unstructured(name, value)


def _part(subtype: bytes, text: str, boundary: str) -> bytes:
    """One part's head and body: as it is (7bit) when it is ASCII lines SMTP carries
    unchanged, which costs a scan; else quoted-printable. Either way no relay has a reason to
    re-encode it and break the DKIM signature (RFC 6376 §5.3)."""
    if text.isascii() and "\r" not in text and "\0" not in text and boundary not in text:
        data = text.encode("ascii")
        if max(map(len, data.split(b"\n"))) <= _LONGEST_LINE:
            return _PART_HEAD % (subtype, b"7bit") + data.replace(b"\n", b"\r\n")
    return _PART_HEAD % (subtype, b"quoted-printable") + _quoted_printable(text)


def _quoted_printable(text: str) -> bytes:
    # b2a_qp keeps lines <= 76 with soft breaks, encodes trailing blanks and a lone ".", and
    # follows the input's line ends, so normalize to LF first and to CRLF after.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True)
    return encoded.replace(b"\n", b"\r\n")


def build_message(
    content: RenderedContent,
    *,
    from_addr: str,
    to_addr: str,
    message_id: str,
    date: float,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """One `multipart/alternative` message (text/plain, then text/html) with CRLF line ends.

    `from_addr` and `to_addr` are `"Name <a@b>"` or bare `a@b`; `headers` are added after
    MIME-Version in the order given. Raises ValueError for a bad address or header.
    """
    if not (message_id.startswith("<") and message_id.endswith(">")) or not message_id.isascii():
        raise ValueError(f"Message-ID must be ASCII in angle brackets: {message_id!r}")
    boundary = "=_mp_" + hashlib.sha256(message_id.encode("ascii")).hexdigest()[:24]
    fields = [
        _address_field("From", from_addr),
        _to_field(to_addr),
        h.unstructured("Subject", content.subject),
        f"Date: {h.rfc5322_date(date)}\r\n",
        h.fold("Message-ID", message_id),
        "MIME-Version: 1.0\r\n",
    ]
    if headers:
        fields.extend(_extra_field(name, value) for name, value in headers.items())
    # `=_` never occurs in quoted-printable output, and a 7bit part is one without it.
    fields.append(f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n')
    head = "".join(fields).encode("ascii")
    delimiter = b"--" + boundary.encode("ascii")
    return b"".join(
        (
            head,
            delimiter,
            b"\r\n",
            _part(b"plain", content.text, boundary),
            b"\r\n",
            delimiter,
            b"\r\n",
            _part(b"html", content.html, boundary),
            b"\r\n",
            delimiter,
            b"--\r\n",
        )
    )
