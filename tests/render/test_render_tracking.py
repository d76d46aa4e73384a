"""Link rewriting at compile time, tracked links and the open pixel per recipient, and the
tokens they carry: only addresses the message held can come back out of them."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailpulse.render import TemplateLibrary
from mailpulse.render.tracking import (
    CLICK,
    OPEN,
    Click,
    Tracking,
    read_click,
    read_open,
)
from mailpulse.tokens import TokenError, TokenSigner
from mailpulse.types import MessageClass

SIGNER = TokenSigner("t" * 64)
BASE = "https://t.shop.example"
TRACKING = Tracking(base=BASE, own=(BASE, "https://mail.example.com"))
KEY = "campaign:spring:user_1"
SENT_AT = 1_760_000_000
_HREF = re.compile(r'href="([^"]*)"')
_PIXEL = re.compile(r'<img src="([^"]*)" width="1" height="1"')

FRONT = "---\nsubject: Hello\n---\n"
PAGE = (
    FRONT
    + """<html><body>
<p><a href="https://shop.example.com/sale?a=1&amp;b=2" class="cta">Sale</a>
<a href="https://shop.example.com/sale?a=1&amp;b=2">Sale again</a>
<a href="{{ project.url }}/p/{{ contact.id }}?q={{ contact.q }}">Yours</a>
<a href="mailto:help@shop.example.com">Mail us</a> <a href="tel:+15551234">Call</a>
<a href="#top">Top</a> <a href="/relative">Relative</a>
<a data-mailpulse-track="no" href="https://shop.example.com/private">Private</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
<a href='{% if contact.vip %}https://shop.example.com/vip{% else %}/all{% endif %}'>Offer</a>
</p>
</body></html>
"""
)


def _tracker(message_class: str = MessageClass.MARKETING, tracking: Tracking = TRACKING):
    return tracking.tracker(SIGNER, KEY, message_class, SENT_AT)


def _clicks(body: str) -> list[str]:
    """Where each tracked link of a rendered body leads, read back from its token."""
    prefix = f"{BASE}/c/"
    return [
        read_click(SIGNER, href[len(prefix) :]).url
        for href in _HREF.findall(body)
        if href.startswith(prefix)
    ]


@pytest.fixture
def page(templates, shop_context):
    library = TemplateLibrary.load(templates(page__html=PAGE))
    return library.get("page"), shop_context(q="a&b", vip=True)


def test_addresses_the_same_for_everyone_are_compiled_into_the_link_table(page) -> None:
    template, _ = page
    assert [link.url for link in template._marks.links] == ["https://shop.example.com/sale?a=1&b=2"]


def test_each_tracked_link_leads_where_the_untracked_message_led(page) -> None:
    template, context = page
    plain = template.render(context).html
    tracked = template.render(context, tracker=_tracker()).html
    wanted = [html.unescape(h) for h in _HREF.findall(plain)]
    assert _clicks(tracked) == [
        "https://shop.example.com/sale?a=1&b=2",
        "https://shop.example.com/sale?a=1&b=2",
        "https://shop.example.com/p/user_1?q=a&b",  # Jinja rendered, then tracked
        "https://shop.example.com/vip",
    ]
    assert set(_clicks(tracked)) <= set(wanted)


def test_links_that_are_not_web_pages_or_are_marked_or_are_our_own_stay_as_written(
    page,
) -> None:
    template, context = page
    hrefs = _HREF.findall(template.render(context, tracker=_tracker()).html)
    for kept in (
        "mailto:help@shop.example.com",
        "tel:+15551234",
        "#top",
        "/relative",
        "https://shop.example.com/private",
        "https://mail.example.com/u/tok123",
    ):
        assert kept in hrefs
    assert "data-mailpulse-track" not in template.render(context).html


def test_a_rendered_link_to_our_own_pages_is_never_rewritten(templates, shop_context) -> None:
    own = f"{BASE}/u/{SIGNER.sign('unsubscribe', 'x')}"
    library = TemplateLibrary.load(
        templates(own__html=FRONT + '<html><body><a href="{{ link }}">x</a></body></html>')
    )
    body = library.get("own").render({"link": own}, tracker=_tracker()).html
    assert _HREF.findall(body) == [own]


def test_the_open_pixel_goes_last_in_the_body(page) -> None:
    template, context = page
    body = template.render(context, tracker=_tracker()).html
    pixel = _PIXEL.search(body)
    assert pixel is not None and body.index(pixel.group()) < body.index("</body>")
    token = pixel.group(1).removeprefix(f"{BASE}/o/")
    opened = read_open(SIGNER, token)
    assert (opened.key, opened.sent_at) == (KEY, SENT_AT)


def test_transactional_mail_is_not_tracked_unless_configured(page) -> None:
    template, context = page
    plain = template.render(context).html
    receipt = template.render(context, tracker=_tracker(MessageClass.TRANSACTIONAL)).html
    assert receipt == plain and "/o/" not in receipt
    everything = Tracking(base=BASE, transactional=True)
    tracked = template.render(context, tracker=_tracker(MessageClass.TRANSACTIONAL, everything))
    assert _clicks(tracked.html) and _PIXEL.search(tracked.html)


def test_opens_and_clicks_are_switched_off_apart(page) -> None:
    template, context = page
    plain = template.render(context).html
    no_clicks = template.render(context, tracker=_tracker(tracking=Tracking(BASE, clicks=False)))
    assert not _clicks(no_clicks.html) and _PIXEL.search(no_clicks.html)
    no_opens = template.render(context, tracker=_tracker(tracking=Tracking(BASE, opens=False)))
    assert _clicks(no_opens.html) and not _PIXEL.search(no_opens.html)
    assert _HREF.findall(no_clicks.html) == _HREF.findall(plain)


def test_the_text_part_keeps_the_addresses_people_can_read(page) -> None:
    template, context = page
    text = template.render(context, tracker=_tracker()).text
    assert "https://shop.example.com/sale?a=1&b=2" in text and "/c/" not in text


def test_mjml_buttons_and_images_are_tracked(templates, shop_context) -> None:
    mjml = """---
subject: Hi
---
<mjml><mj-body><mj-section><mj-column>
<mj-button href="https://shop.example.com/b?x=1">Buy</mj-button>
<mj-image src="https://shop.example.com/i.png" href="{{ project.url }}/i/{{ contact.id }}" />
</mj-column></mj-section></mj-body></mjml>
"""
    template = TemplateLibrary.load(templates(news__mjml=mjml)).get("news")
    body = template.render(shop_context(), tracker=_tracker()).html
    assert _clicks(body) == [
        "https://shop.example.com/b?x=1",
        "https://shop.example.com/i/user_1",
    ]


def test_long_addresses_keep_every_line_within_what_smtp_carries(templates) -> None:
    links = "".join(
        f'<a href="https://shop.example.com/{n}/{"x" * 400}?u={{{{ id }}}}">{n}</a> '
        for n in range(8)
    )
    template = TemplateLibrary.load(
        templates(long__html=f"{FRONT}<html><body><p>{links}</p></body></html>")
    ).get("long")
    body = template.render({"id": "user_1"}, tracker=_tracker()).html
    assert len(_clicks(body)) == 8
    assert max(map(len, body.split("\n"))) <= 998


# -- tokens ------------------------------------------------------------------------------

urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "HTTPS"]),
    st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60),
)


# Written into the template as they are: a "{" could open a Jinja tag ("{%" failed to compile).
static_urls = urls.filter(lambda url: "{" not in url)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hrefs=st.lists(static_urls, min_size=1, max_size=5, unique=True), value=st.text(max_size=40))
def test_no_address_outside_the_message_comes_out_of_its_links(
    templates, hrefs: list[str], value: str
) -> None:
    anchors = "".join(f'<a href="{html.escape(h)}">x</a>' for h in hrefs)
    anchors += '<a href="https://shop.example.com/{{ v }}">v</a>'
    library = TemplateLibrary.load(
        templates(any__html=f"{FRONT}<html><body>{anchors}</body></html>")
    )
    template = library.get("any")
    body = template.render({"v": value}, tracker=_tracker()).html
    # What the untracked message leads to, as a mail client reads its attributes.
    shown = {html.unescape(h).strip() for h in _HREF.findall(template.render({"v": value}).html)}
    assert set(_clicks(body)) <= shown
    assert len(_clicks(body)) == len(hrefs) + 1


@given(url=urls, at=st.integers(min_value=0), change=st.integers(min_value=1, max_value=255))
def test_every_byte_change_of_a_click_token_is_refused(url: str, at: int, change: int) -> None:
    token = SIGNER.sign(CLICK, Click(KEY, url, SENT_AT))
    raw = bytearray(token.encode())
    raw[at % len(raw)] ^= change
    try:
        tampered = raw.decode()
    except UnicodeDecodeError:
        return  # not even text: never reaches the endpoint as a path
    if tampered == token:
        return
    with pytest.raises(TokenError):
        read_click(SIGNER, tampered)


@given(st.text(max_size=300))
def test_any_made_up_token_is_refused(token: str) -> None:
    with pytest.raises(TokenError):
        read_click(SIGNER, token)
    with pytest.raises(TokenError):
        read_open(SIGNER, token)


def test_a_token_for_another_purpose_or_payload_is_refused() -> None:
    opened = SIGNER.sign(OPEN, [KEY, SENT_AT])
    with pytest.raises(TokenError):
        read_click(SIGNER, opened)
    with pytest.raises(TokenError):
        read_click(SIGNER, SIGNER.sign(CLICK, [KEY, SENT_AT]))  # signed, but not a click
    with pytest.raises(TokenError):
        read_click(SIGNER, SIGNER.sign(CLICK, [KEY, "javascript:alert(1)", SENT_AT]))
    with pytest.raises(TokenError):
        read_click(TokenSigner("u" * 64), SIGNER.sign(CLICK, [KEY, "https://a.example", 1]))


def test_a_rotated_secret_still_opens_old_links(tmp_path: Path) -> None:
    token = SIGNER.sign(CLICK, Click(KEY, "https://shop.example.com/", SENT_AT))
    rotated = TokenSigner("n" * 64, previous=["t" * 64])
    assert read_click(rotated, token).url == "https://shop.example.com/"
