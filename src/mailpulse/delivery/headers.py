"""Header lines as bytes: RFC 2047 encoded words for non-ASCII text, folding at 78 columns.

Each function returns one complete header field, folded, ending in CRLF.
"""

from __future__ import annotations

import base64
import re
import time

FOLD_AT = 78
MAX_LINE = 998  # RFC 5322 §2.1.1, without the CRLF

# RFC 2047 §5(3): in a phrase a Q-encoded word may hold only these unencoded (space is "_").
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_ENCODED_WORD_MAX = 75  # RFC 2047 §2
_WORD_OVERHEAD = len("=?utf-8?q?") + len("?=")
_FOLD_POINT = re.compile(r"[ \t](?=[^ \t])")
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_WHITESPACE_RUN = re.compile(r"[\r\n\t]+")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def check_name(name: str) -> None:
    """Raises ValueError unless `name` is a legal field name (printable ASCII, no colon)."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"not a header field name: {name!r}")


def fold(name: str, value: str) -> str:
    """`Name: value` folded before whitespace so lines stay within 78 columns where possible.

    Raises ValueError when a line would still exceed the 998-octet limit.
    """
    head = f"{name}: {value}"
    if len(head) <= FOLD_AT:
        return head + "\r\n"
    points = [m.start() for m in _FOLD_POINT.finditer(head, len(name) + 2)]
    points.append(len(head))
    lines: list[str] = []
    start = 0
    previous = -1
    for point in points:
        if point - start > FOLD_AT and previous > start:
            lines.append(head[start:previous])
            start = previous
        previous = point
    lines.append(head[start:])
    if any(len(line) > MAX_LINE for line in lines):
        raise ValueError(f"header {name} has a word longer than {MAX_LINE} characters")
    return "\r\n".join(lines) + "\r\n"


def encoded_words(text: str, first_limit: int) -> list[str]:
    """`text` as RFC 2047 utf-8 encoded words, each a whole number of characters.

    Q encoding when it is shorter (mostly-Latin text stays readable), else B. The first word
    is at most `first_limit` long so it fits on the line after the field name.
    """
    data = text.encode("utf-8")
    q_length = sum(1 if byte in _Q_SAFE or byte == 0x20 else 3 for byte in data)
    use_q = q_length <= (len(data) + 2) // 3 * 4
    words: list[str] = []
    limit = max(first_limit, _WORD_OVERHEAD + 12) - _WORD_OVERHEAD
    chunk: list[str] = []
    size = 0
    for char in text:
        raw = char.encode("utf-8")
        cost = sum(1 if b in _Q_SAFE or b == 0x20 else 3 for b in raw) if use_q else len(raw)
        # B words grow in 4-char steps per 3 bytes: compare the encoded length.
        grown = size + cost if use_q else (size + cost + 2) // 3 * 4
        if chunk and grown > limit:
            words.append(_encode_word("".join(chunk), use_q))
            chunk, size = [], 0
            limit = _ENCODED_WORD_MAX - _WORD_OVERHEAD
        chunk.append(char)
        size += cost
    if chunk:
        words.append(_encode_word("".join(chunk), use_q))
    return words


def _encode_word(text: str, use_q: bool) -> str:
    data = text.encode("utf-8")
    if not use_q:
        return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="
    out = []
    for byte in data:
        if byte in _Q_SAFE:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("_")
        else:
            out.append(f"={byte:02X}")
    return f"=?utf-8?q?{''.join(out)}?="


def single_line(value: str) -> str:
    """Line breaks and tabs as one space: a value must not be able to start a new header line."""
    if "\r" not in value and "\n" not in value and "\t" not in value:
        return value  # three C scans, where the regex costs ~10 ns a character
    return _WHITESPACE_RUN.sub(" ", value)


def unstructured(name: str, value: str) -> str:
    """An unstructured field (Subject, most X- fields): kept as is when plain ASCII, else encoded.

    Line breaks and tabs in `value` become one space (see `single_line`).
    """
    value = single_line(value)
    # Plain ASCII that merely looks like an encoded word would be decoded by readers: encode it.
    if value.isascii() and "=?" not in value and value.isprintable():
        try:
            return fold(name, value)
        except ValueError:
            pass
    return fold(name, " ".join(encoded_words(value, FOLD_AT - len(name) - 2)))


def mailbox(name: str, display_name: str, addr_spec: str) -> str:
    """An address field with one mailbox: `Name: display <addr>` or `Name: addr`."""
    if not display_name:
        return fold(name, addr_spec)
    if display_name.isascii() and display_name.isprintable():
        if _ATOM_PHRASE.fullmatch(display_name) and display_name.strip() == display_name:
            phrase = display_name
        else:
            escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
            phrase = f'"{escaped}"'
    else:
        phrase = " ".join(encoded_words(single_line(display_name), FOLD_AT - len(name) - 2))
    return fold(name, f"{phrase} <{addr_spec}>")


def rfc5322_date(epoch_seconds: float) -> str:
    """`Tue, 04 Jun 2024 09:30:00 +0000` (RFC 5322 §3.3), in UTC."""
    t = time.gmtime(epoch_seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )
