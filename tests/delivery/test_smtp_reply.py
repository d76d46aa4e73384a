import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailpulse.delivery.smtp_connection import dot_stuffed
from mailpulse.delivery.smtp_reply import MAX_PENDING, ReplyParser, SmtpProtocolError


def test_multi_line_reply_split_across_reads():
    parser = ReplyParser()
    assert parser.feed(b"250-mx.example greets you\r\n250-PIPE") == []
    assert not parser.idle
    (reply,) = parser.feed(b"LINING\r\n250 8BITMIME\r\n")
    assert reply.code == 250
    assert reply.lines == ["mx.example greets you", "PIPELINING", "8BITMIME"]
    assert parser.idle


def test_pipelined_replies_come_out_in_order():
    replies = ReplyParser().feed(b"250 2.1.0 ok\r\n550 5.1.1 <x@y>: unknown\r\n354 go\r\n")
    assert [r.code for r in replies] == [250, 550, 354]
    assert [r.enhanced for r in replies] == ["2.1.0", "5.1.1", ""]
    assert replies[1].text == "<x@y>: unknown"
    assert not replies[1].ok and replies[0].ok


def test_enhanced_code_and_text_on_every_line():
    (reply,) = ReplyParser().feed(b"452-4.2.2 over quota\r\n452 4.2.2 try later\r\n")
    assert (reply.enhanced, reply.text) == ("4.2.2", "over quota\ntry later")


def test_bare_code_and_lf_line_ends_are_accepted():
    (reply,) = ReplyParser().feed(b"221\n")
    assert (reply.code, reply.lines, reply.text) == (221, [""], "")


@pytest.mark.parametrize(
    "data",
    [b"hello\r\n", b"25 short\r\n", b"250x\r\n", b"250-a\r\n251 b\r\n", b"2" * (MAX_PENDING + 1)],
)
def test_garbage_is_a_protocol_error(data):
    with pytest.raises(SmtpProtocolError):
        ReplyParser().feed(data)


@pytest.mark.parametrize(
    ("data", "wire"),
    [
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n"),
        (b".a\r\n.\r\n..\r\n", b"..a\r\n..\r\n...\r\n.\r\n"),
        (b"a\n.\nb\rc", b"a\r\n..\r\nb\r\nc\r\n.\r\n"),
    ],
)
def test_dot_stuffing(data, wire):
    assert dot_stuffed(data) == wire


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))))
def test_dot_stuffing_of_crlf_lines_skips_only_the_scan(lines):
    # build_message's output (tests/delivery/test_mime.py checks it has no bare CR or LF).
    data = b"".join(line + b"\r\n" for line in lines)
    assert dot_stuffed(data, crlf_only=True) == dot_stuffed(data)
