import asyncio

import pytest

from mailpulse.delivery import OpenTransaction, SmtpRelay
from mailpulse.types import DeliveryStatus, RenderedMessage

from .peers import Recorder, accept_user, free_port

BODY = (
    b"From: news@shop.example\r\nTo: ann@example.org\r\nSubject: dots\r\n\r\n"
    b".leading dot\r\n..two dots\r\n.\r\nmiddle\r\n.\r\n"
)

STUFFED = BODY.replace(b"\r\n.", b"\r\n..")  # as it must look on the wire


def message(n: int = 0, rcpt: str = "ann@example.org", data: bytes = BODY) -> RenderedMessage:
    return RenderedMessage(
        key=f"k{n}",
        message_id=f"<m{n}@shop.example>",
        mail_from="bounce@shop.example",
        rcpt_to=rcpt,
        data=data,
    )


def relay(port: int, **kwargs) -> SmtpRelay:
    kwargs.setdefault("helo_name", "client.test")
    kwargs.setdefault("starttls", False)
    return SmtpRelay("127.0.0.1", port, **kwargs)


async def test_content_arrives_byte_exact_over_reused_connections(smtp_server):
    handler, port = smtp_server()
    client = relay(port, max_connections=2)
    results = [await client.send(message(n, data=BODY + b"n=%d\r\n" % n)) for n in range(20)]
    await client.close()
    assert {(r.status, r.code, r.enhanced) for r in results} == {
        (DeliveryStatus.SENT, 250, "2.0.0")
    }
    assert [r.key for r in results] == [f"k{n}" for n in range(20)]
    assert [m[2] for m in handler.messages] == [BODY + b"n=%d\r\n" % n for n in range(20)]
    assert handler.messages[0][:2] == ("bounce@shop.example", ["ann@example.org"])
    assert len(handler.peers) == 1


async def test_content_without_final_line_end_gets_one(smtp_server):
    handler, port = smtp_server()
    client = relay(port)
    result = await client.send(message(data=b"Subject: x\r\n\r\nno end\n.bare lf"))
    await client.close()
    assert result.status == DeliveryStatus.SENT
    assert handler.messages[0][2] == b"Subject: x\r\n\r\nno end\r\n.bare lf\r\n"


async def test_reply_codes_map_to_statuses_and_connection_survives(smtp_server):
    handler, port = smtp_server(
        Recorder(
            {
                "busy@example.org": ("DATA", "451 4.3.0 try later"),
                "nobody@example.org": ("RCPT", "550 5.1.1 no such user"),
                "full@example.org": ("DATA", "552-5.2.2 mailbox full\r\n552 5.2.2 really"),
            }
        )
    )
    client = relay(port, max_connections=1)
    busy = await client.send(message(1, "busy@example.org"))
    nobody = await client.send(message(2, "nobody@example.org"))
    full = await client.send(message(3, "full@example.org"))
    fine = await client.send(message(4))
    await client.close()
    assert (busy.status, busy.code, busy.enhanced, busy.text) == (
        DeliveryStatus.DEFERRED,
        451,
        "4.3.0",
        "try later",
    )
    assert (nobody.status, nobody.code, nobody.enhanced, nobody.text) == (
        DeliveryStatus.BOUNCED,
        550,
        "5.1.1",
        "no such user",
    )
    assert (full.status, full.code, full.enhanced) == (DeliveryStatus.BOUNCED, 552, "5.2.2")
    assert full.text == "mailbox full\nreally"
    assert fine.status == DeliveryStatus.SENT
    assert len(handler.messages) == 1 and len(handler.peers) == 1


async def test_starttls_with_trusted_certificate(smtp_server, certificate):
    handler, port = smtp_server(tls_context=certificate.server_context(), require_starttls=True)
    client = relay(port, starttls=True, ssl_context=certificate.client_context())
    result = await client.send(message())
    await client.close()
    assert result.status == DeliveryStatus.SENT
    assert handler.messages[0][2] == BODY


async def test_opportunistic_starttls_is_used_when_offered(smtp_server, certificate):
    _, port = smtp_server(tls_context=certificate.server_context(), require_starttls=True)
    client = relay(port, starttls=None, ssl_context=certificate.client_context())
    assert (await client.send(message())).status == DeliveryStatus.SENT
    await client.close()


async def test_untrusted_certificate_defers(smtp_server, certificate):
    _, port = smtp_server(tls_context=certificate.server_context())
    client = relay(port, starttls=True)
    result = await client.send(message())
    await client.close()
    assert (result.status, result.code) == (DeliveryStatus.DEFERRED, 0)
    assert "CERTIFICATE_VERIFY_FAILED" in result.text


async def test_starttls_required_but_not_offered_defers(smtp_server):
    handler, port = smtp_server()
    client = relay(port, starttls=True)
    result = await client.send(message())
    await client.close()
    assert (result.status, result.code) == (DeliveryStatus.DEFERRED, 0)
    assert "STARTTLS" in result.text
    assert handler.messages == []


async def test_implicit_tls(smtp_server, certificate):
    handler, port = smtp_server(ssl_context=certificate.server_context())
    client = relay(port, starttls=None, implicit_tls=True, ssl_context=certificate.client_context())
    assert (await client.send(message())).status == DeliveryStatus.SENT
    await client.close()
    assert handler.messages[0][2] == BODY


@pytest.mark.parametrize("exclude", [[], ["PLAIN"]], ids=["plain", "login"])
async def test_auth_after_starttls(smtp_server, certificate, exclude):
    handler, port = smtp_server(
        tls_context=certificate.server_context(),
        authenticator=accept_user(b"mailer", b"s3cret pass"),
        auth_required=True,
        auth_exclude_mechanism=exclude,
    )
    client = relay(
        port,
        starttls=True,
        ssl_context=certificate.client_context(),
        username="mailer",
        password="s3cret pass",
    )
    result = await client.send(message())
    await client.close()
    assert result.status == DeliveryStatus.SENT
    assert len(handler.messages) == 1


async def test_wrong_password_defers_with_the_server_reply(smtp_server, certificate):
    handler, port = smtp_server(
        tls_context=certificate.server_context(),
        authenticator=accept_user(b"mailer", b"right"),
        auth_required=True,
    )
    client = relay(
        port,
        starttls=True,
        ssl_context=certificate.client_context(),
        username="mailer",
        password="wrong",
    )
    result = await client.send(message())
    await client.close()
    assert (result.status, result.code) == (DeliveryStatus.DEFERRED, 535)
    assert result.text.startswith("AUTH: 535")
    assert handler.messages == []


async def test_no_credentials_without_tls(smtp_server):
    _, port = smtp_server(auth_require_tls=False, authenticator=accept_user(b"u", b"p"))
    client = relay(port, starttls=None, username="u", password="p")
    result = await client.send(message())
    await client.close()
    assert result.status == DeliveryStatus.DEFERRED
    assert "without TLS" in result.text
    with pytest.raises(ValueError, match="TLS"):
        relay(port, starttls=False, username="u", password="p")


async def test_pipelining_sends_envelope_in_one_write(scripted):
    server = await scripted(pipelining=True)
    client = relay(server.port)
    assert (await client.send(message())).status == DeliveryStatus.SENT
    await client.close()
    envelope_read = next(read for read in server.reads if b"MAIL FROM" in read)
    assert envelope_read == (
        b"MAIL FROM:<bounce@shop.example>\r\nRCPT TO:<ann@example.org>\r\nDATA\r\n"
    )
    assert server.messages == [STUFFED]


async def test_without_pipelining_commands_go_one_by_one(scripted):
    server = await scripted(pipelining=False)
    client = relay(server.port)
    assert (await client.send(message())).status == DeliveryStatus.SENT
    await client.close()
    commands = [read for read in server.reads if read[:4] in (b"MAIL", b"RCPT", b"DATA")]
    assert commands == [
        b"MAIL FROM:<bounce@shop.example>\r\n",
        b"RCPT TO:<ann@example.org>\r\n",
        b"DATA\r\n",
    ]
    assert server.messages == [STUFFED]


async def test_helo_fallback_when_ehlo_is_refused(scripted):
    server = await scripted(replies={"EHLO": b"502 5.5.2 what?\r\n"})
    client = relay(server.port)
    assert (await client.send(message())).status == DeliveryStatus.SENT
    await client.close()
    assert b"HELO client.test\r\n" in server.reads
    # HELO means no PIPELINING: MAIL went alone.
    assert b"MAIL FROM:<bounce@shop.example>\r\n" in server.reads


async def test_pipelined_refusal_with_accepted_data_sends_empty_content(scripted):
    server = await scripted(replies={"RCPT": b"550 5.1.1 unknown\r\n"})
    client = relay(server.port, max_connections=1)
    refused = await client.send(message(1))
    assert (refused.status, refused.code, refused.enhanced) == (
        DeliveryStatus.BOUNCED,
        550,
        "5.1.1",
    )
    assert server.messages == [b""]
    assert any(read.startswith(b"RSET") for read in server.reads)
    await client.close()
    assert server.connections == 1


@pytest.mark.parametrize("stage", ["RCPT", "END"])
async def test_server_hanging_up_mid_transaction_defers(scripted, stage):
    server = await scripted(replies={stage: None})
    client = relay(server.port)
    result = await client.send(message())
    assert (result.status, result.code) == (DeliveryStatus.DEFERRED, 0)
    assert "closed" in result.text
    assert client.in_flight == 0
    server.replies = {}
    assert (await client.send(message(2))).status == DeliveryStatus.SENT
    await client.close()


async def test_silent_server_times_out(scripted):
    server = await scripted(replies={"END": b""})
    client = relay(server.port, timeout=0.3)
    result = await client.send(message())
    await client.close()
    assert (result.status, result.code) == (DeliveryStatus.DEFERRED, 0)
    assert "no reply to the end of DATA" in result.text


async def test_a_cancelled_transaction_does_not_hold_up_close(scripted):
    # The server never answers the end of DATA; the sender gives up (its caller was cancelled,
    # as when the process that asked for the send is gone). close() must not wait for it.
    server = await scripted(replies={"END": b""})
    client = relay(server.port, timeout=30)
    sending = asyncio.create_task(client.send(message()))
    while not server.messages:  # noqa: ASYNC110 - the scripted server only keeps a list
        await asyncio.sleep(0.01)
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sending
    await asyncio.wait_for(client.close(), 2)
    assert client.in_flight == 0


async def test_connection_refused_defers():
    client = relay(free_port())
    result = await client.send(message())
    await client.close()
    assert (result.status, result.code) == (DeliveryStatus.DEFERRED, 0)
    assert "ConnectionRefusedError" in result.text


async def test_421_closes_the_connection(scripted):
    server = await scripted(replies={"MAIL": b"421 4.7.0 too busy, closing\r\n"})
    client = relay(server.port, max_connections=1)
    result = await client.send(message())
    assert (result.status, result.code, result.enhanced) == (
        DeliveryStatus.DEFERRED,
        421,
        "4.7.0",
    )
    server.replies = {}
    assert (await client.send(message(2))).status == DeliveryStatus.SENT
    await client.close()
    assert server.connections == 2


async def test_connection_dropped_while_idle_is_replaced(scripted):
    server = await scripted()
    server.after_message = b"421 4.4.2 idle too long\r\n"
    client = relay(server.port, max_connections=1)
    results = [await client.send(message(n)) for n in range(3)]
    await client.close()
    assert [r.status for r in results] == [DeliveryStatus.SENT] * 3
    assert server.connections == 3


async def test_connections_are_retired_after_max_messages(scripted):
    server = await scripted()
    client = relay(server.port, max_connections=1, max_messages_per_connection=3)
    for n in range(7):
        assert (await client.send(message(n))).status == DeliveryStatus.SENT
    await client.close()
    assert server.connections == 3
    assert server.reads.count(b"QUIT\r\n") == 3
    assert len(server.messages) == 7


async def test_many_concurrent_messages_arrive_exactly_once(smtp_server):
    handler, port = smtp_server()
    client = relay(port, max_connections=5, max_messages_per_connection=1000)
    peak = 0

    async def send(n):
        nonlocal peak
        result = await client.send(message(n, data=BODY + b"X-N: %d\r\n" % n))
        peak = max(peak, client.in_flight)
        return result

    results = await asyncio.gather(*(send(n) for n in range(500)))
    await client.close()
    assert all(r.status == DeliveryStatus.SENT for r in results)
    received = sorted(m[2] for m in handler.messages)
    assert received == sorted(BODY + b"X-N: %d\r\n" % n for n in range(500))
    assert len(handler.peers) <= 5
    assert client.in_flight == 0 and peak <= 5


async def test_bad_recipient_bounces_without_a_connection():
    client = relay(free_port())
    result = await client.send(message(rcpt="ännchen@example.org"))
    assert (result.status, result.enhanced) == (DeliveryStatus.BOUNCED, "5.1.3")
    await client.close()


async def test_idn_recipient_goes_out_as_punycode(scripted):
    server = await scripted()
    client = relay(server.port)
    assert (await client.send(message(rcpt="ann@bücher.de"))).status == DeliveryStatus.SENT
    await client.close()
    assert any(b"RCPT TO:<ann@xn--bcher-kva.de>" in read for read in server.reads)


async def test_send_after_close_is_a_programming_error(scripted):
    server = await scripted()
    client = relay(server.port)
    await client.send(message())
    await client.close()
    assert b"QUIT\r\n" in server.reads
    with pytest.raises(RuntimeError):
        await client.send(message())


async def test_an_open_transaction_delivers_only_when_finished(smtp_server):
    handler, port = smtp_server()
    client = relay(port, max_connections=1)
    opened = await client.begin("k1", "bounce@shop.example", "ann@example.org")
    assert isinstance(opened, OpenTransaction)
    assert client.in_flight == 1 and not client.has_free_connection()
    await asyncio.sleep(0.05)
    assert handler.messages == []  # the server holds the envelope, waiting for the content
    result = await opened.finish(BODY)
    assert (result.key, result.status, result.code) == ("k1", DeliveryStatus.SENT, 250)
    assert client.in_flight == 0 and client.has_free_connection()
    assert handler.messages == [("bounce@shop.example", ["ann@example.org"], BODY)]
    with pytest.raises(RuntimeError, match="after finish"):
        await opened.finish(BODY)
    await client.close()


async def test_an_abandoned_transaction_delivers_nothing_and_frees_its_slot(smtp_server):
    handler, port = smtp_server()
    client = relay(port, max_connections=1)
    opened = await client.begin("k1", "bounce@shop.example", "ann@example.org")
    assert isinstance(opened, OpenTransaction)
    opened.abandon()
    opened.abandon()  # twice is harmless
    assert client.in_flight == 0 and client.has_free_connection()
    # The one connection went with the transaction: the next send opens another.
    assert (await client.send(message(2))).status == DeliveryStatus.SENT
    await asyncio.wait_for(client.close(), 2)
    assert [m[2] for m in handler.messages] == [BODY]
    assert len(handler.peers) == 1  # only the second connection reached DATA's end


async def test_a_refused_envelope_is_the_result_of_begin(smtp_server):
    handler, port = smtp_server(Recorder({"bob@example.org": ("RCPT", "550 5.1.1 no bob")}))
    client = relay(port, max_connections=1)
    refused = await client.begin("k1", "bounce@shop.example", "bob@example.org")
    assert not isinstance(refused, OpenTransaction)
    assert (refused.key, refused.status, refused.code) == ("k1", DeliveryStatus.BOUNCED, 550)
    assert client.in_flight == 0 and client.has_free_connection()
    assert (await client.send(message())).status == DeliveryStatus.SENT
    await client.close()
    assert len(handler.messages) == 1
