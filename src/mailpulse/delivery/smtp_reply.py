"""SMTP replies (RFC 5321 §4.2) parsed from the byte stream, with RFC 3463 enhanced codes."""

from __future__ import annotations

import re

_ENHANCED = re.compile(r"([245]\.\d{1,3}\.\d{1,3})(?:\s+|$)")
MAX_PENDING = 65536  # bytes without a line end before we call the server broken


class SmtpProtocolError(Exception):
    """The server sent something that is not an SMTP reply."""


class Reply:
    """One complete reply: its code and the text of each of its lines."""

    __slots__ = ("code", "lines")

    def __init__(self, code: int, lines: list[str]) -> None:
        self.code = code
        self.lines = lines

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def enhanced(self) -> str:
        """`5.1.1` from `550 5.1.1 ...`, or "" when the server gave none."""
        found = _ENHANCED.match(self.lines[0])
        return found.group(1) if found else ""

    @property
    def text(self) -> str:
        """The lines joined by newlines, without the enhanced code that starts each one."""
        return "\n".join(_ENHANCED.sub("", line, count=1) for line in self.lines).strip()

    def __repr__(self) -> str:
        return f"Reply({self.code}, {self.lines!r})"


class ReplyParser:
    """Turns received bytes into complete replies; multi-line replies come out as one."""

    __slots__ = ("_buffer", "_code", "_lines")

    def __init__(self) -> None:
        self._buffer = b""
        self._code = 0
        self._lines: list[str] = []

    @property
    def idle(self) -> bool:
        """True when no partial reply is held."""
        return not self._buffer and not self._lines

    def feed(self, data: bytes) -> list[Reply]:
        """The replies completed by `data`; raises SmtpProtocolError on a malformed line."""
        buffer = self._buffer + data if self._buffer else data
        replies: list[Reply] = []
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            separator = line[3:4]
            if not line[:3].isdigit() or separator not in (b"", b" ", b"-"):
                raise SmtpProtocolError(f"not an SMTP reply line: {line[:80]!r}")
            code = int(line[:3])
            if self._lines and code != self._code:
                raise SmtpProtocolError(f"reply code changed inside a multi-line reply: {line!r}")
            self._code = code
            self._lines.append(line[4:].decode("utf-8", "replace"))
            if separator != b"-":
                replies.append(Reply(code, self._lines))
                self._lines = []
        self._buffer = buffer[start:]
        if len(self._buffer) > MAX_PENDING:
            raise SmtpProtocolError(f"reply line longer than {MAX_PENDING} bytes")
        return replies
