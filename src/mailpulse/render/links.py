"""Link rewriting, once per template version: each tracked `<a href>` becomes a call on the
recipient's tracker (mailpulse.render.tracking), and the open pixel goes before `</body>`.

It runs on the compiled HTML while its Jinja tags are still tokens (see placeholders), so the
markup read is plain HTML; what it puts in are slots, filled with Jinja once the tags are back:

- an address that is the same for everyone (`https://shop.example/sale`) goes into the
  template's link table, and the href calls `_tracker.click(_links[n])`;
- an address with Jinja in it (`{{ project.url }}/p/{{ item.id }}`) is rendered as it was,
  captured, and handed to `_tracker.link(...)`: the tracked link carries the rendered address.

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
from mailpulse.render.tracking import Link, is_web_url

TRACKER_VARIABLE = "_tracker"
LINKS_VARIABLE = "_links"
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


def track_links(markup: str, protected: Protected) -> tuple[str, tuple[Link, ...]]:
    """`markup` with its tracked links and the pixel as slots, and the link table."""
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
            slots = protected.slot("hrefopen"), protected.slot("hrefclose")
            return f"href={quote}{slots[0]}{value}{slots[1]}{quote}"
        url = html.unescape(value).strip()
        if not is_web_url(url):
            return None
        if url not in table:
            table[url] = len(links)
            links.append(Link(url=url, written=value))
        return f'href="{protected.slot(f"link{table[url]}x")}"'

    def rewrite(match: re.Match[str]) -> str:
        tag = match.group()
        if tag.startswith("<!") or match.group(1):
            return tag  # a comment, a style or a script
        attributes = list(_ATTRIBUTE.finditer(tag, 2))
        names = [a.group(2).lower() for a in attributes]
        if "href" not in names:
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
            replaced = None if skip or name != "href" else tracked_href(attribute)
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

    rewritten = _SCAN.sub(rewrite, markup)
    pixel = protected.slot("pixel")
    closes = list(_BODY_CLOSE.finditer(rewritten))
    if closes:
        at = closes[-1].start()
        rewritten = f"{rewritten[:at]}\n{pixel}\n{rewritten[at:]}"
    else:
        rewritten = f"{rewritten}\n{pixel}"
    return rewritten, tuple(links)


def fill_tracking(source: str, protected: Protected) -> str:
    """The slots `track_links` left, as the Jinja that fills them for each recipient."""
    source = source.replace(protected.slot("hrefopen"), "{% set _mailpulse_href %}").replace(
        protected.slot("hrefclose"),
        "{% endset %}{{ " + TRACKER_VARIABLE + ".link(_mailpulse_href) }}",
    )
    source = source.replace(protected.slot("pixel"), "{{ " + TRACKER_VARIABLE + ".pixel() }}")
    link = re.compile(re.escape(protected.slot("link")) + r"(\d+)x")
    return link.sub(
        lambda m: "{{ " + f"{TRACKER_VARIABLE}.click({LINKS_VARIABLE}[{m.group(1)}])" + " }}",
        source,
    )


def _unquoted(attribute: re.Match[str]) -> str:
    value = attribute.group(4) or ""
    if value[:1] in ('"', "'") and value[-1:] == value[:1]:
        return value[1:-1]
    return value
