"""Messages carry what makes the ESPs [webhooks] configures name them back in their webhooks,
and nothing of it for a project that configures none: the DKIM signature verifies either way."""

from __future__ import annotations

import email
import json
from email import policy
from pathlib import Path

import dkim

from mailpulse.delivery.esp import echo_headers
from mailpulse.project import load_project
from mailpulse.runtime.courier_parts import message_factory
from mailpulse.types import SendIntent
from tests.e2e.conftest import dkim_dns, write_project
from tests.feedback.webhooks.conftest import WEBHOOKS

KEY = "campaign:spring:user:ana"


def made(project_dir: Path) -> email.message.EmailMessage:
    intent = SendIntent(
        key=KEY,
        contact_id="user:ana",
        email="ana@example.org",
        template="welcome",
        context={"contact": {"first_name": "Ana", "id": "user:ana"}},
    )
    message, _, _ = message_factory(load_project(project_dir)).make(intent)
    assert dkim.verify(message.data, dnsfunc=dkim_dns(project_dir))
    return email.message_from_bytes(message.data, policy=policy.default)  # type: ignore[return-value]


def test_sendgrid_and_postmark_are_told_the_key_only_when_configured(tmp_path: Path) -> None:
    plain = made(write_project(tmp_path / "plain", 2525))
    assert plain["X-SMTPAPI"] is None and plain["X-PM-Metadata-mailpulse-key"] is None
    project = write_project(tmp_path / "esp", 2525)
    with (project / "mailpulse.toml").open("a") as toml:
        toml.write(WEBHOOKS)
    configured = made(project)
    assert json.loads(configured["X-SMTPAPI"]) == {"unique_args": {"mailpulse_key": KEY}}
    assert configured["X-PM-Metadata-mailpulse-key"] == KEY
    assert configured["X-Mailpulse-Key"] == KEY


def test_ses_and_mailgun_need_nothing_more_than_the_message_id() -> None:
    assert echo_headers(("ses", "mailgun"), KEY) == {}
    assert echo_headers((), KEY) == {}
    # A header field is ASCII: the key is written as JSON escapes SendGrid reads back.
    [(name, value)] = echo_headers(("sendgrid",), 'a "quoted" ключ').items()
    assert name == "X-SMTPAPI" and value.isascii()
    assert json.loads(value) == {"unique_args": {"mailpulse_key": 'a "quoted" ключ'}}
