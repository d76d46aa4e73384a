"""Open and click tracking, per recipient: what each tracked link and the open pixel become.

A compiled template marks where its links and pixel go (see mailpulse.render.links), and the
recipient's `Tracker` fills the marks in. A tracked link becomes `{base}/c/{token}`, the token
signed for `click` (mailpulse.tokens) over the send's key, the destination and the moment the
message was made; the pixel is `{base}/o/{token}`, signed for `open` over the key and that
moment. The destination travels in the token, signed, so the redirect can only ever lead where
the message itself led, and a link keeps working after its template changes. What each leads
to is decoded with `read_click` and `read_open` (mailpulse.feedback answers them).

Transactional messages are not tracked unless `[tracking] transactional = true`.
"""

from __future__ import annotations

import functools
import html as html_module
import itertools
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from mailpulse.tokens import TokenError, TokenSigner
from mailpulse.types import MessageClass

CLICK, OPEN = "click", "open"  # token purposes
CLICK_PATH, OPEN_PATH = "/c/", "/o/"
# Paths of mailpulse's own public pages, whose links are never rewritten: unsubscribe and
# preferences, and tracked links already; each a signed token (data, a dot, a 16-byte MAC).
_OWN_PAGE = r"/[upco]/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}/?"
_WEB = re.compile(r"https?://[^\s/?#]+", re.IGNORECASE)
_PIXEL = (
    '<img src="{src}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;" />'
)


class Click(msgspec.Struct, array_like=True, frozen=True):
    """What a click token says: the message (its send key), where the link led, and when the
    message was made (epoch seconds)."""

    key: str
    url: str
    sent_at: int


class Open(msgspec.Struct, array_like=True, frozen=True):
    key: str
    sent_at: int


_Payload = TypeVar("_Payload", Click, Open)


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host: the only kind a tracked link may lead to."""
    return _WEB.match(url) is not None


def read_click(tokens: TokenSigner, token: str) -> Click:
    """The click a token was signed for; TokenError for anything else, tampered or not."""
    click = _decode(tokens.verify(CLICK, token), Click)
    if not is_web_url(click.url):
        raise TokenError("click token without a web address")
    return click


def read_open(tokens: TokenSigner, token: str) -> Open:
    return _decode(tokens.verify(OPEN, token), Open)


def _decode(payload: Any, kind: type[_Payload]) -> _Payload:
    try:
        return msgspec.convert(payload, kind)
    except msgspec.ValidationError:
        raise TokenError(f"not a {kind.__name__.lower()} token") from None


@dataclass(frozen=True, slots=True)
class Link:
    """A link of the template whose address is the same for every recipient: the address,
    and the attribute text it was written as (what an untracked message shows)."""

    url: str
    written: str


# What follows a mark's prefix: link n of the table (`l<n>x`), an address as rendered between
# `hopen` and `hclose`, the pixel.
LINK_MARK, OPEN_MARK, CLOSE_MARK, PIXEL_MARK = "l", "hopen", "hclose", "pixel"


@dataclass(frozen=True, slots=True)
class Marks:
    """Where a template's tracked HTML marks its links and pixel (see mailpulse.render.links):
    each mark is `prefix` and a label (`LINK_MARK` ...), `links` the link table."""

    prefix: str
    links: tuple[Link, ...]


class Tracker:
    """One message's tracked links and open pixel. A tracker whose `tracks` is false leaves
    the message as it is (the HTML compiled without marks is rendered for it)."""

    __slots__ = ("_base", "_clicks", "_key", "_opens", "_own", "_sent_at", "_tokens", "tracks")

    def __init__(
        self,
        tokens: TokenSigner | None,
        *,
        base: str = "",
        key: str = "",
        sent_at: int = 0,
        opens: bool = False,
        clicks: bool = False,
        own: re.Pattern[str] | None = None,
    ) -> None:
        """`own`: matches the addresses of mailpulse's own pages (see `Tracking`)."""
        self._tokens = tokens
        self._base = base
        self._key = key
        self._sent_at = sent_at
        self._opens = opens and tokens is not None
        self._clicks = clicks and tokens is not None
        self._own = own
        self.tracks = self._opens or self._clicks

    def fill(self, html: str, marks: Marks) -> str:
        """The HTML rendered with marks, each filled in: tracked, or as written. The marks are
        found by splitting at their prefix (one pass in C); a piece that is no mark (a value
        that held the prefix) is left as it was."""
        links, prefix = marks.links, marks.prefix
        signed: dict[str, str] = {}  # a link twice in a message is signed once
        pieces = html.split(prefix)
        out = [pieces[0]]
        rendered: str | None = None  # an address between its open and close marks
        for piece in itertools.islice(pieces, 1, None):
            if rendered is not None:
                if piece.startswith(CLOSE_MARK):
                    out.append(self._address(rendered, signed))
                    out.append(piece[len(CLOSE_MARK) :])
                    rendered = None
                else:
                    rendered += prefix + piece
            elif piece.startswith(OPEN_MARK):
                rendered = piece[len(OPEN_MARK) :]
            elif piece.startswith(PIXEL_MARK):
                out.append(self._pixel())
                out.append(piece[len(PIXEL_MARK) :])
            elif piece.startswith(LINK_MARK) and (end := piece.find("x")) > 1:
                link = links[int(piece[1:end])]
                out.append(self._tracked(link.url, signed) if self._clicks else link.written)
                out.append(piece[end + 1 :])
            else:
                out.append(prefix + piece)
        if rendered is not None:
            out.append(prefix + OPEN_MARK + rendered)
        return "".join(out)

    def _address(self, rendered: str, signed: dict[str, str]) -> str:
        """An href as Jinja rendered it (HTML-escaped): tracked when it is a web page's."""
        url = html_module.unescape(rendered).strip()
        own = self._own is not None and self._own.fullmatch(url)
        if not self._clicks or not is_web_url(url) or own:
            return rendered
        return self._tracked(url, signed)

    def _tracked(self, url: str, signed: dict[str, str]) -> str:
        tracked = signed.get(url)
        if tracked is None:
            assert self._tokens is not None
            token = self._tokens.sign(CLICK, Click(self._key, url, self._sent_at))
            tracked = signed[url] = f"{self._base}{CLICK_PATH}{token}"
        return tracked

    def _pixel(self) -> str:
        if not self._opens:
            return ""
        assert self._tokens is not None
        token = self._tokens.sign(OPEN, Open(self._key, self._sent_at))
        return _PIXEL.format(src=f"{self._base}{OPEN_PATH}{token}")


NO_TRACKING = Tracker(None)


@dataclass(frozen=True)
class Tracking:
    """What a project tracks (`[tracking]` in mailpulse.toml) and where its links lead:
    `base` is the tracking domain's URL, `own` the bases of mailpulse's own pages."""

    base: str
    opens: bool = True
    clicks: bool = True
    transactional: bool = False
    own: tuple[str, ...] = ()

    def tracker(
        self, tokens: TokenSigner | None, key: str, message_class: str, sent_at: float
    ) -> Tracker:
        """The tracker of one message; one that tracks nothing for a class not tracked."""
        if tokens is None or not (self.opens or self.clicks):
            return NO_TRACKING
        if message_class == MessageClass.TRANSACTIONAL and not self.transactional:
            return NO_TRACKING
        return Tracker(
            tokens,
            base=self.base,
            key=key,
            sent_at=int(sent_at),
            opens=self.opens,
            clicks=self.clicks,
            own=self.own_pages,
        )

    @functools.cached_property
    def own_pages(self) -> re.Pattern[str]:
        """The addresses of mailpulse's own pages under any of `own`."""
        bases = "|".join(map(re.escape, self.own))
        return re.compile(rf"(?:{bases}){_OWN_PAGE}")
