"""Messages made by the courier carry tracked links and the open pixel, as the project says."""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

from mailpulse.project import load_project
from mailpulse.render.tracking import read_click, read_open
from mailpulse.runtime.courier_parts import message_factory
from mailpulse.tokens import TokenSigner
from mailpulse.types import MessageClass, SendIntent
from tests.e2e.conftest import write_project

SIGNER = TokenSigner("c" * 64)
_TRACKED = re.compile(r'href="https://shop\.test/c/([^"]+)"')
_PIXEL = re.compile(r'src="https://shop\.test/o/([^"]+)"')


def html_of(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=policy.default)
    return message.get_body(("html",)).get_content()  # type: ignore[union-attr]


def welcome(message_class: str = MessageClass.MARKETING) -> SendIntent:
    return SendIntent(
        key="journey:welcome:u-1:0:send",
        contact_id="u-1",
        email="ann@example.org",
        template="welcome",
        context={"contact": {"first_name": "Ann", "id": "u-1"}},
        message_class=message_class,
    )


def test_a_marketing_message_is_tracked_with_the_moment_it_was_made(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path / "p", 2525))
    factory = message_factory(project, tokens=SIGNER)
    factory._clock = lambda: 1_760_000_000.5
    message, _, _ = factory.make(welcome())
    html = html_of(message.data)
    [token] = _TRACKED.findall(html)
    click = read_click(SIGNER, token)
    assert (click.key, click.url) == (message.key, "https://shop.test/start?u=u-1")
    assert click.sent_at == 1_760_000_000
    [pixel] = _PIXEL.findall(html)
    assert read_open(SIGNER, pixel).key == message.key


def test_receipts_and_factories_without_tokens_are_not_tracked(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path / "p", 2525))
    receipt, _, _ = message_factory(project, tokens=SIGNER).make(
        welcome(MessageClass.TRANSACTIONAL)
    )
    untokened, _, _ = message_factory(project).make(welcome())
    for made in (receipt, untokened):
        html = html_of(made.data)
        assert "https://shop.test/start?u=u-1" in html
        assert not _TRACKED.search(html) and not _PIXEL.search(html)
