"""A plain-text Jinja template derived once from a compiled HTML template.

The HTML still holds the placeholder tokens of its Jinja tags (see `placeholders`), so the
parser sees plain markup; the tokens pass into the text and are restored to Jinja afterwards.
Statement tokens never carry line breaks of their own: a break owed before a block is written
just before that block's text, so it repeats and vanishes with the block under `{% for %}` and
`{% if %}`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIPPED = frozenset({"head", "style", "script", "title", "template"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_PARAGRAPHS = frozenset(
    {
        "p",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "ul",
        "ol",
        "blockquote",
        "hr",
        "center",
    }
)
_LINES = frozenset({"tr", "li"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def html_to_text_template(html: str, statement_token: re.Pattern[str]) -> str:
    """Text holding the placeholder tokens of `html`, whose statement comments match the pattern."""
    converter = _TextConverter(statement_token)
    converter.feed(html)
    converter.close()
    return converter.result()


class _TextConverter(HTMLParser):
    def __init__(self, statement_token: re.Pattern[str]) -> None:
        super().__init__(convert_charrefs=True)
        self._statement_token = statement_token
        self._pieces: list[str] = []
        self._owed_breaks = 0
        self._at_line_start = True
        self._started = False
        self._last_text = 0  # index of the last piece of text, not of a statement token
        self._skipping: str | None = None
        self._skip_nesting = 0
        self._links: list[tuple[str, int]] = []  # href, first piece of the link text

    def result(self) -> str:
        return "".join(self._pieces).strip() + "\n"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping is not None:
            if tag == self._skipping:
                self._skip_nesting += 1
            return
        attributes = dict(attrs)
        if tag not in _VOID and (
            tag in _SKIPPED or _HIDDEN_STYLE.search(attributes.get("style") or "")
        ):
            self._skipping, self._skip_nesting = tag, 1
            return
        if tag in _PARAGRAPHS:
            self._owe(2)
        elif tag in _LINES:
            self._owe(1)
        elif tag == "br":
            self._owed_breaks = min(self._owed_breaks + 1, 2)
            self._at_line_start = True
        elif tag in ("td", "th") and not self._at_line_start:
            self._write(" ")
        if tag == "li":
            self._write("- ")
        elif tag == "a":
            self._links.append((attributes.get("href") or "", len(self._pieces)))

    def handle_endtag(self, tag: str) -> None:
        if self._skipping is not None:
            if tag == self._skipping:
                self._skip_nesting -= 1
                if self._skip_nesting == 0:
                    self._skipping = None
            return
        if tag in _PARAGRAPHS:
            self._owe(2)
        elif tag in _LINES:
            self._owe(1)
        elif tag == "a" and self._links:
            self._end_link(*self._links.pop())

    def handle_data(self, data: str) -> None:
        if self._skipping is None:
            self._write(_WHITESPACE.sub(" ", data))

    def handle_comment(self, data: str) -> None:
        # Statements are kept even inside skipped parts: dropping one would unbalance the rest.
        if self._statement_token.fullmatch(data.strip()):
            self._pieces.append(data.strip())
            self._started = True

    def _owe(self, breaks: int) -> None:
        self._owed_breaks = max(self._owed_breaks, breaks)
        self._at_line_start = True

    def _write(self, text: str) -> None:
        if self._at_line_start:
            text = text.lstrip(" ")
        if not text:
            return
        if self._owed_breaks and self._started:
            self._trim_line_end()
            self._pieces.append("\n" * self._owed_breaks)
        self._owed_breaks = 0
        self._at_line_start = False
        self._started = True
        self._last_text = len(self._pieces)
        self._pieces.append(text)

    def _trim_line_end(self) -> None:
        self._pieces[self._last_text] = self._pieces[self._last_text].rstrip(" ")

    def _end_link(self, href: str, first: int) -> None:
        # A link around an image alone is left out: images are decoration in a text part, and
        # shop mail links each product image beside its named link.
        label = "".join(self._pieces[first:]).strip()
        if not href or href.startswith("#") or not label:
            return
        if label != href:
            self._trim_line_end()
            self._write(f" ({href})")
