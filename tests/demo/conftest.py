from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage

import pytest

from mailpulse.demo import CaptureInbox

SendMail = Callable[..., Awaitable[None]]


def _shop_message(
    subject: str = "Your cart misses you",
    *,
    to: str = "ada@example.com",
    html: str | None = "<p>Come back for your <b>sweater</b>.</p>",
    text: str | None = "Come back for your sweater.",
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.net>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Tue, 02 Jul 2024 10:00:00 +0000"
    message["Message-ID"] = "<abc.123@example.net>"
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    return message


@pytest.fixture
def shop_message() -> Callable[..., EmailMessage]:
    """A factory for a small multipart/alternative shop email."""
    return _shop_message


@pytest.fixture
async def inbox() -> AsyncIterator[CaptureInbox]:
    async with CaptureInbox() as started:
        yield started


@pytest.fixture
def smtp_send() -> SendMail:
    """Send messages to a port with smtplib over real TCP, in a thread (smtplib blocks)."""

    async def send(port: int, *messages: EmailMessage | bytes, to: list[str] | None = None) -> None:
        def deliver() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                for message in messages:
                    if isinstance(message, bytes):
                        client.sendmail("shop@example.net", to or ["ada@example.com"], message)
                    else:
                        client.send_message(message, to_addrs=to)

        await asyncio.to_thread(deliver)

    return send
