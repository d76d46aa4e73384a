"""What MessageFactory puts in each message for its recipient's subscriptions: a marketing
message carries List-Unsubscribe (HTTPS and mailto, one token) and List-Unsubscribe-Post,
both under the DKIM signature (dkimpy verifies it and finds them in h=), and its body links
to the same pages; a transactional one has working links but neither header nor footer."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from pathlib import Path

import dkim
import pytest

from mailpulse.feedback.unsubscribe import UNSUBSCRIBE, MessageToken, read_token
from mailpulse.project import load_project
from mailpulse.runtime.courier import MessageFactory
from mailpulse.runtime.courier_parts import message_factory
from mailpulse.tokens import TokenSigner
from mailpulse.types import MessageClass, SendIntent
from tests.e2e.conftest import dkim_dns, write_project

TOKENS = TokenSigner("k" * 32)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "project", 2525)
    # One template without a link of its own: it gets the footer.
    (root / "templates" / "plain.html").write_text(
        '---\nsubject: "Sale"\n---\n<html><body><p>Our sale is on.</p></body></html>\n'
    )
    return root


@pytest.fixture
def factory(project_dir: Path) -> MessageFactory:
    return message_factory(load_project(project_dir), tokens=TOKENS)


def intent(
    message_class: str, template: str = "welcome", topic: str | None = "offers"
) -> SendIntent:
    return SendIntent(
        key=f"campaign:sale:ann-{message_class}",
        contact_id="ann",
        email="ann@example.com",
        template=template,
        context={"contact": {"first_name": "Ann", "email": "ann@example.com"}},
        message_class=message_class,
        topic=topic,
    )


def test_a_marketing_message_carries_both_signed_headers(
    factory: MessageFactory, project_dir: Path
) -> None:
    made, _, _ = factory.make(intent(MessageClass.MARKETING))
    parsed = message_from_bytes(made.data, policy=policy.default)
    header = str(parsed["List-Unsubscribe"])
    found = re.fullmatch(
        r"<https://shop\.test/u/([A-Za-z0-9_.-]+)>, "
        r"<mailto:unsubscribe@shop\.test\?subject=unsubscribe%20([A-Za-z0-9_.-]+)>",
        header,
    )
    assert found is not None and found.group(1) == found.group(2)
    assert read_token(TOKENS, UNSUBSCRIBE, found.group(1)) == MessageToken(
        "ann", "ann@example.com", "offers", "campaign:sale:ann-marketing"
    )
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    signature = re.sub(r"\s+", "", str(parsed["DKIM-Signature"]))
    signed = re.search(r";h=([^;]+);", signature)
    assert signed is not None
    names = signed.group(1).lower().split(":")
    assert {"list-unsubscribe", "list-unsubscribe-post"} <= set(names)
    assert dkim.verify(made.data, dnsfunc=dkim_dns(project_dir))
    # The body's unsubscribe link is the header's page.
    html = parsed.get_body(("html",)).get_content()
    assert f"https://shop.test/u/{found.group(1)}" in html


def test_a_transactional_message_has_working_links_but_no_headers(
    factory: MessageFactory,
) -> None:
    made, _, _ = factory.make(intent(MessageClass.TRANSACTIONAL, topic=None))
    parsed = message_from_bytes(made.data, policy=policy.default)
    assert parsed["List-Unsubscribe"] is None and parsed["List-Unsubscribe-Post"] is None
    html = parsed.get_body(("html",)).get_content()
    link = re.search(r'https://shop\.test/u/([A-Za-z0-9_.-]+)"', html)
    assert link is not None and read_token(TOKENS, UNSUBSCRIBE, link.group(1)).topic == ""


def test_a_template_without_a_link_gets_the_footer_for_marketing_only(
    factory: MessageFactory, project_dir: Path
) -> None:
    made, _, _ = factory.make(intent(MessageClass.MARKETING, "plain"))
    parsed = message_from_bytes(made.data, policy=policy.default)
    html = parsed.get_body(("html",)).get_content()
    text = parsed.get_body(("plain",)).get_content()
    assert "Unsubscribe</a>" in html and "1 Test Street, Testville" in html
    assert re.search(r"Unsubscribe: https://shop\.test/u/\S+\r?\n", text)
    assert dkim.verify(made.data, dnsfunc=dkim_dns(project_dir))
    receipt, _, _ = factory.make(intent(MessageClass.TRANSACTIONAL, "plain", None))
    assert b"Unsubscribe" not in receipt.data


def test_one_signature_per_message(
    factory: MessageFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed: list[str] = []
    original = TokenSigner.sign

    def counting(self: TokenSigner, purpose: str, payload: object) -> str:
        signed.append(purpose)
        return original(self, purpose, payload)

    monkeypatch.setattr(TokenSigner, "sign", counting)
    factory.make(intent(MessageClass.MARKETING))
    assert signed.count(UNSUBSCRIBE) == 1
