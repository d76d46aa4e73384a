"""Open and click tracking, per recipient: what each tracked link and the open pixel become.

A compiled template calls its recipient's `Tracker` where its links and pixel go (see
mailpulse.render.links). A tracked link becomes `{base}/c/{token}`, the token signed for
`click` (mailpulse.tokens) over the send's key, the destination and the moment the message was
made; the pixel is `{base}/o/{token}`, signed for `open` over the key and that moment. The
destination travels in the token, signed, so the redirect can only ever lead where the message
itself led, and a link keeps working after its template changes. What each leads to is decoded
with `read_click` and `read_open` (mailpulse.feedback answers them).

Transactional messages are not tracked unless `[tracking] transactional = true`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from markupsafe import Markup

from mailpulse.tokens import TokenError, TokenSigner
from mailpulse.types import MessageClass

CLICK, OPEN = "click", "open"  # token purposes
CLICK_PATH, OPEN_PATH = "/c/", "/o/"
# Paths of mailpulse's own public pages, whose links are never rewritten: unsubscribe and
# preferences, and tracked links already; each a signed token (data, a dot, a 16-byte MAC).
_OWN_PAGE = re.compile(r"/[upco]/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}/?")
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


class Tracker:
    """One recipient's tracked links and open pixel (a tracker with `tokens` None tracks
    nothing: every link stays as written, and there is no pixel)."""

    __slots__ = ("_base", "_clicks", "_key", "_opens", "_own", "_sent_at", "_tokens")

    def __init__(
        self,
        tokens: TokenSigner | None,
        *,
        base: str = "",
        key: str = "",
        sent_at: int = 0,
        opens: bool = False,
        clicks: bool = False,
        own: tuple[str, ...] = (),
    ) -> None:
        self._tokens = tokens
        self._base = base
        self._key = key
        self._sent_at = sent_at
        self._opens = opens and tokens is not None
        self._clicks = clicks and tokens is not None
        self._own = own

    def click(self, link: Link) -> str | Markup:
        """A link of the template's link table."""
        if not self._clicks:
            return Markup(link.written)
        return self._tracked(link.url)

    def link(self, rendered: Markup) -> str | Markup:
        """A link whose address Jinja rendered for this recipient (HTML-escaped text)."""
        if not self._clicks:
            return rendered
        url = html.unescape(str(rendered)).strip()
        if not is_web_url(url) or self._is_own(url):
            return rendered
        return self._tracked(url)

    def pixel(self) -> Markup:
        if not self._opens:
            return Markup("")
        assert self._tokens is not None
        token = self._tokens.sign(OPEN, Open(self._key, self._sent_at))
        return Markup(_PIXEL.format(src=f"{self._base}{OPEN_PATH}{token}"))

    def _tracked(self, url: str) -> str:
        assert self._tokens is not None
        token = self._tokens.sign(CLICK, Click(self._key, url, self._sent_at))
        return f"{self._base}{CLICK_PATH}{token}"

    def _is_own(self, url: str) -> bool:
        return any(
            url.startswith(base) and _OWN_PAGE.fullmatch(url, len(base)) for base in self._own
        )


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
            own=self.own,
        )
