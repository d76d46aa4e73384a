from __future__ import annotations

import asyncio

import pytest
import uvloop

from mailpulse.demo import CaptureInbox


async def test_mail_from_smtplib_is_stored_and_parsed(inbox, smtp_send, shop_message):
    message = shop_message("Grüße aus dem Shop", to="ada@example.com")
    message["DKIM-Signature"] = "v=1; a=rsa-sha256; d=example.net; s=s1; h=from; bh=x; b=y"
    await smtp_send(inbox.port, message)

    captured = await inbox.wait_for(lambda m: True, timeout=5)
    assert captured.id == 1
    assert inbox.received_count == 1
    assert captured.mail_from == "shop@example.net"
    assert captured.rcpt_tos == ["ada@example.com"]
    assert b"=?utf-8?" in captured.raw  # the subject travelled RFC 2047 encoded
    assert captured.subject == "Grüße aus dem Shop"
    assert captured.from_header == "Shop <shop@example.net>"
    assert captured.to_header == "ada@example.com"
    assert captured.date == "Tue, 02 Jul 2024 10:00:00 +0000"
    assert captured.message_id == "<abc.123@example.net>"
    assert captured.text == "Come back for your sweater.\n"
    assert captured.html == "<p>Come back for your <b>sweater</b>.</p>\n"
    assert captured.has_dkim_signature


async def test_capture_defers_parsing_until_asked(inbox, smtp_send, shop_message):
    await smtp_send(inbox.port, shop_message(html=None))
    captured = await inbox.wait_for(lambda m: True, timeout=5)
    assert "headers" not in vars(captured) and "_bodies" not in vars(captured)

    assert not captured.has_dkim_signature
    assert captured.html is None
    assert captured.text == "Come back for your sweater.\n"


async def _reply(reader: asyncio.StreamReader) -> list[str]:
    lines = []
    while True:
        line = (await reader.readline()).decode()
        assert line, "server closed the connection"
        lines.append(line.rstrip("\r\n"))
        if line[3:4] != "-":
            return lines


async def test_pipelined_client_gets_every_reply_and_both_messages_stored(inbox):
    reader, writer = await asyncio.open_connection("127.0.0.1", inbox.port)
    try:
        assert (await _reply(reader))[0].startswith("220 ")
        writer.write(b"EHLO client.example\r\n")
        assert "250-PIPELINING" in await _reply(reader)

        writer.write(
            b"MAIL FROM:<>\r\nRCPT TO:<ada@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
        )
        codes = [(await _reply(reader))[-1][:3] for _ in range(4)]
        assert codes == ["250", "250", "250", "354"]

        # The end of one message, a whole second transaction and its DATA go in one write.
        writer.write(
            b"Subject: first\r\n\r\n..leading dot\r\n.\r\n"
            b"MAIL FROM:<shop@example.net>\r\nRCPT TO:<cy@example.com>\r\nDATA\r\n"
        )
        codes = [(await _reply(reader))[-1][:3] for _ in range(4)]
        assert codes == ["250", "250", "250", "354"]
        writer.write(b"Subject: second\r\n\r\nhello\r\n.\r\nQUIT\r\n")
        codes = [(await _reply(reader))[-1][:3] for _ in range(2)]
        assert codes == ["250", "221"]
    finally:
        writer.close()

    first, second = inbox.get(1), inbox.get(2)
    assert first is not None and second is not None
    assert (first.mail_from, first.rcpt_tos) == ("", ["ada@example.com", "bob@example.org"])
    assert first.subject == "first"
    assert first.text == ".leading dot\n"  # dot-stuffing undone
    assert (second.mail_from, second.rcpt_tos, second.subject) == (
        "shop@example.net",
        ["cy@example.com"],
        "second",
    )


async def test_oldest_messages_are_dropped_past_capacity(smtp_send, shop_message):
    async with CaptureInbox(capacity=3) as small:
        await smtp_send(small.port, *[shop_message(f"message {n}") for n in range(1, 6)])

        assert small.received_count == 5
        assert len(small) == 3
        assert [m.id for m in small.messages()] == [5, 4, 3]
        assert [m.subject for m in small] == ["message 3", "message 4", "message 5"]
        assert small.get(1) is None and small.get(2) is None and small.get(6) is None
        assert small.get(3).subject == "message 3"


async def test_messages_newest_first_filtered_by_recipient(inbox, smtp_send, shop_message):
    await smtp_send(inbox.port, shop_message("for ada"), to=["ada@example.com"])
    await smtp_send(inbox.port, shop_message("for bob"), to=["bob@example.org"])
    await smtp_send(inbox.port, shop_message("for both"), to=["ada@example.com", "Bob@Example.org"])

    assert [m.subject for m in inbox.messages()] == ["for both", "for bob", "for ada"]
    assert [m.subject for m in inbox.messages(to="BOB@example.org")] == ["for both", "for bob"]
    assert [m.subject for m in inbox.messages(to="ada@example.com", limit=1)] == ["for both"]
    assert inbox.messages(to="nobody@example.com") == []


async def test_wait_for_wakes_when_a_matching_message_arrives(inbox, smtp_send, shop_message):
    waiting = asyncio.create_task(inbox.wait_for(lambda m: m.subject == "second", timeout=10))
    await smtp_send(inbox.port, shop_message("first"), shop_message("second"))
    assert (await waiting).id == 2


async def test_wait_for_raises_timeout_when_nothing_matches(inbox, smtp_send, shop_message):
    await smtp_send(inbox.port, shop_message("first"))
    with pytest.raises(TimeoutError):
        await inbox.wait_for(lambda m: m.subject == "never", timeout=0.05)


async def test_malformed_mail_is_kept_and_shown_as_well_as_possible(inbox, smtp_send):
    hostile = (
        b"Subject: =?no-such-charset?q?hi?=\r\n"
        b"From: <<<@@@>>>\r\n"
        b"Content-Type: text/plain; charset=no-such-charset\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"\r\n"
        b"caf\xe9 body\r\n"
    )
    await smtp_send(inbox.port, hostile, b"no headers at all\r\n")

    broken, bare = inbox.get(1), inbox.get(2)
    assert broken is not None and bare is not None
    assert isinstance(broken.subject, str) and isinstance(broken.from_header, str)
    assert broken.text is not None and "body" in broken.text
    assert broken.html is None
    assert bare.subject == "" and bare.message_id == ""
    assert bare.text == "no headers at all\n"


def test_capacity_must_be_positive():
    with pytest.raises(ValueError, match="capacity"):
        CaptureInbox(capacity=0)


async def test_stop_hangs_up_on_clients_and_keeps_messages(smtp_send, shop_message):
    inbox = CaptureInbox()
    await inbox.start()
    with pytest.raises(RuntimeError, match="already started"):
        await inbox.start()
    await smtp_send(inbox.port, shop_message("kept"))
    reader, writer = await asyncio.open_connection("127.0.0.1", inbox.port)
    assert (await _reply(reader))[0].startswith("220 ")

    await inbox.stop()

    assert await asyncio.wait_for(reader.read(), timeout=5) == b""
    writer.close()
    assert inbox.get(1).subject == "kept"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", inbox.port)


def test_runs_on_the_uvloop_the_app_uses(smtp_send, shop_message):
    async def scenario() -> tuple[str, str]:
        async with CaptureInbox() as inbox:
            await smtp_send(inbox.port, shop_message("on uvloop"))
            captured = await inbox.wait_for(lambda m: True, timeout=5)
            return type(asyncio.get_running_loop()).__module__, captured.subject

    loop_module, subject = uvloop.run(scenario())
    assert loop_module.startswith("uvloop")
    assert subject == "on uvloop"
