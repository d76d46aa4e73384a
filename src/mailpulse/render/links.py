"""Link rewriting, once per template version: each tracked `<a href>` and the open pixel become
marks in a second compiled HTML, which the recipient's tracker fills (mailpulse.render.tracking).

It runs on the compiled HTML while its Jinja tags are still tokens (see placeholders), so the
markup read is plain HTML. The marks are text Jinja passes through:

- an address that is the same for everyone (`https://shop.example/sale`) goes into the
  template's link table, and the href holds a mark with its number;
- an address with Jinja in it (`{{ project.url }}/p/{{ item.id }}`) is rendered as it was,
  between two marks: the tracked link carries the address as rendered for the recipient;
- the pixel's mark goes before `</body>`.

So a message is rendered by Jinja as it would be untracked, and one scan of the result puts in
its tracked links: no call into Python per link while Jinja renders. A message not tracked uses
the HTML compiled without marks.

Not rewritten: addresses that are not http(s) (mailto:, tel:, #anchors, relative ones), links
marked `data-mailpulse-track="no"` (the mark itself is dropped), and hrefs naming one of
`UNTRACKED_VARIABLES` (the unsubscribe and preference links; the tracker also leaves alone any
rendered address of mailpulse's own pages). Each tracked href is put on a line of its own, so
that the longer address a recipient gets cannot push a line past what SMTP carries as it is.
"""

from __future__ import annotations

import html
import re

from mailpulse.render.placeholders import Protected
from mailpulse.render.tracking import (
    CLOSE_MARK,
    LINK_MARK,
    OPEN_MARK,
    PIXEL_MARK,
    Link,
    Marks,
    is_web_url,
)

# Links a recipient must reach as they are: what they lead to is mailpulse's own page.
UNTRACKED_VARIABLES = ("unsubscribe_url", "preferences_url")
_UNTRACKED = re.compile(rf"\b(?:{'|'.join(UNTRACKED_VARIABLES)})\b")
_SKIP_MARK = "data-mailpulse-track"
_SKIP_VALUES = ("no", "false", "off")
# Comments and raw text are passed over; an <a> start tag is rewritten.
_SCAN = re.compile(
    r"<!--.*?-->|<(style|script)\b.*?</\1\s*>|<a\s(?:[^>\"']|\"[^\"]*\"|'[^']*')*>",
    re.IGNORECASE | re.DOTALL,
)
_ATTRIBUTE = re.compile(r"""(\s+)([^\s"'>/=]+)(?:(\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+))?""")
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)


def track_links(markup: str, protected: Protected) -> tuple[str, str, Marks]:
    """`markup` as an untracked message shows it (without skip marks), and with its tracked
    links and the pixel marked; and how to read the marks."""
    table: dict[str, int] = {}
    links: list[Link] = []
    tokens = protected.bare_token_pattern()

    def tracked_href(attribute: re.Match[str]) -> str | None:
        """What replaces an href, or None to leave it."""
        value = _unquoted(attribute)
        found = [int(m.group(1)) for m in tokens.finditer(value)]
        if found:
            if any(_UNTRACKED.search(protected.tags[i].source) for i in found):
                return None
            # Quoted as it was: a value in single quotes may hold a double one.
            quote = "'" if (attribute.group(4) or "").startswith("'") else '"'
            marks = protected.slot(OPEN_MARK), protected.slot(CLOSE_MARK)
            return f"href={quote}{marks[0]}{value}{marks[1]}{quote}"
        url = html.unescape(value).strip()
        if not is_web_url(url):
            return None
        if url not in table:
            table[url] = len(links)
            links.append(Link(url=url, written=value))
        return f'href="{protected.slot(f"{LINK_MARK}{table[url]}x")}"'

    def rewrite(match: re.Match[str], *, tracking: bool) -> str:
        tag = match.group()
        if tag.startswith("<!") or match.group(1):
            return tag  # a comment, a style or a script
        attributes = list(_ATTRIBUTE.finditer(tag, 2))
        names = [a.group(2).lower() for a in attributes]
        if "href" not in names or not (tracking or _SKIP_MARK in names):
            return tag
        end = attributes[-1].end()
        skip = _SKIP_MARK in names and _unquoted(attributes[names.index(_SKIP_MARK)]).lower() in (
            _SKIP_VALUES
        )
        parts = [tag[:2]]
        after_href = False
        for attribute, name in zip(attributes, names, strict=True):
            if name == _SKIP_MARK:
                continue
            written = attribute.group()
            tracked = tracking and not skip and name == "href"
            replaced = tracked_href(attribute) if tracked else None
            if replaced is not None:
                parts.append(f"\n{replaced}")
                after_href = True
                continue
            if after_href:
                written = "\n" + written.lstrip()
                after_href = False
            parts.append(written)
        parts.append(tag[end:])
        return "".join(parts)

    plain = _SCAN.sub(lambda match: rewrite(match, tracking=False), markup)
    rewritten = _SCAN.sub(lambda match: rewrite(match, tracking=True), markup)
    pixel = protected.slot(PIXEL_MARK)
    closes = list(_BODY_CLOSE.finditer(rewritten))
    if closes:
        at = closes[-1].start()
        rewritten = f"{rewritten[:at]}\n{pixel}\n{rewritten[at:]}"
    else:
        rewritten = f"{rewritten}\n{pixel}"
    return plain, rewritten, Marks(protected.slot(""), tuple(links))


def _unquoted(attribute: re.Match[str]) -> str:
    value = attribute.group(4) or ""
    if value[:1] in ('"', "'") and value[-1:] == value[:1]:
        return value[1:-1]
    return value
