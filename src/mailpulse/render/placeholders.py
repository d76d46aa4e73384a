"""Jinja tags hidden from MJML and css-inline behind inert tokens, and put back afterwards.

MJML's parser rejects `<` and `"` inside text and attributes, and an HTML serializer would
escape them, so every `{{ ... }}` and `{% ... %}` is swapped for a lowercase alphanumeric token
before compiling. A statement outside any tag becomes an HTML comment, because MJML keeps
comments between its components (say around the `<mj-text>` a `{% for %}` repeats) where it
would drop bare text. Jinja comments are dropped.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass

_JINJA_TAG = re.compile(
    r"""\{\{(?:[^}'"]|'[^']*'|"[^"]*"|\}(?!\}))*\}\}"""
    r"""|\{%(?:[^%'"]|'[^']*'|"[^"]*"|%(?!\}))*%\}"""
    r"""|\{\#.*?\#\}""",
    re.DOTALL,
)
# What the compiler left that Jinja would read as a tag opener, e.g. minified CSS `{#id{...}}`.
_LITERAL_OPENER = re.compile(r"\{(?=[{%#])")
_MARKUP_CONTEXT = re.compile(r"<!--|-->|<[A-Za-z/!?]|[<>\"']")


@dataclass(frozen=True, slots=True)
class JinjaTag:
    source: str
    offset: int  # where it starts in the original text
    is_statement: bool


@dataclass(frozen=True, slots=True)
class Protected:
    """Markup with its Jinja tags replaced by tokens; `tags[i]` is behind token number i."""

    text: str
    original: str
    tags: tuple[JinjaTag, ...]
    nonce: str
    _protected_starts: tuple[int, ...]
    _original_starts: tuple[int, ...]

    def token_pattern(self) -> re.Pattern[str]:
        """A token, bare or as the comment a statement outside tags became."""
        return re.compile(rf"<!--\s*mpj{self.nonce}t(\d+)x\s*-->|mpj{self.nonce}t(\d+)x")

    def bare_token_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"mpj{self.nonce}t(\d+)x")

    def slot(self, label: str) -> str:
        """A marker no tag or literal can hold, for the compiler to put back as it likes."""
        return f"mpj{self.nonce}{label}"

    def original_line(self, offset: int) -> int:
        """The 0-based line of the original text that `offset` in the protected text came from."""
        i = bisect.bisect_right(self._protected_starts, offset) - 1
        original = self._original_starts[i] + offset - self._protected_starts[i]
        return self.original.count("\n", 0, original)

    def restore(self, text: str) -> tuple[str, list[int]]:
        """Put the Jinja tags back; also count how often each token came through."""
        counts = [0] * len(self.tags)
        out: list[str] = []
        position = 0
        for match in self.token_pattern().finditer(text):
            out.append(_LITERAL_OPENER.sub("{{ '{' }}", text[position : match.start()]))
            index = int(match.group(1) or match.group(2))
            counts[index] += 1
            out.append(self.tags[index].source)
            position = match.end()
        out.append(_LITERAL_OPENER.sub("{{ '{' }}", text[position:]))
        return "".join(out), counts


def protect(text: str) -> Protected:
    nonce = hashlib.sha256(text.encode()).hexdigest()[:8]
    while f"mpj{nonce}" in text:
        nonce = hashlib.sha256(nonce.encode()).hexdigest()[:8]
    pieces: list[str] = []
    tags: list[JinjaTag] = []
    protected_starts = [0]
    original_starts = [0]
    in_markup = _MarkupScanner()
    position = 0
    length = 0
    for match in _JINJA_TAG.finditer(text):
        literal = text[position : match.start()]
        in_markup.feed(literal)
        pieces.append(literal)
        length += len(literal)
        source = match.group()
        if not source.startswith("{#"):
            is_statement = source.startswith("{%")
            token = f"mpj{nonce}t{len(tags)}x"
            if is_statement and not in_markup.inside:
                token = f"<!--{token}-->"
            tags.append(JinjaTag(source=source, offset=match.start(), is_statement=is_statement))
            pieces.append(token)
            length += len(token)
        position = match.end()
        protected_starts.append(length)
        original_starts.append(position)
    pieces.append(text[position:])
    return Protected(
        text="".join(pieces),
        original=text,
        tags=tuple(tags),
        nonce=nonce,
        _protected_starts=tuple(protected_starts),
        _original_starts=tuple(original_starts),
    )


class _MarkupScanner:
    """Tracks whether the text fed so far ends inside a tag, a quoted attribute or a comment."""

    def __init__(self) -> None:
        self._state = "text"  # text | tag | comment | a quote character

    @property
    def inside(self) -> bool:
        return self._state != "text"

    def feed(self, literal: str) -> None:
        for match in _MARKUP_CONTEXT.finditer(literal):
            mark = match.group()
            if self._state == "text":
                if mark == "<!--":
                    self._state = "comment"
                elif len(mark) == 2 and mark[0] == "<":
                    self._state = "tag"
            elif self._state == "comment":
                if mark == "-->":
                    self._state = "text"
            elif self._state == "tag":
                if mark in ('"', "'"):
                    self._state = mark
                elif mark == ">" or mark == "-->":
                    self._state = "text"
            elif mark == self._state:
                self._state = "tag"
