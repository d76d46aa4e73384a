import email
import email.policy
import email.utils

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.delivery import build_message, make_message_id
from mailpulse.delivery.mime import parse_address
from mailpulse.types import RenderedContent

DATE = 1717493400.0  # Tue, 04 Jun 2024 09:30:00 UTC


def build(
    subject="Hello",
    text="Hi there\n",
    html="<p>Hi there</p>\n",
    from_addr="Shop <news@shop.example>",
    to_addr="ann@example.org",
    message_id="<abc@shop.example>",
    headers=None,
):
    content = RenderedContent(subject=subject, html=html, text=text)
    return build_message(
        content,
        from_addr=from_addr,
        to_addr=to_addr,
        message_id=message_id,
        date=DATE,
        headers=headers,
    )


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def wire_lines(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\r\n")
    lines = raw[:-2].split(b"\r\n")
    # The courier relies on this: it tells dot_stuffed to skip its scan for them.
    assert all(b"\n" not in line and b"\r" not in line for line in lines), "bare CR or LF"
    return lines


def header_block(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_message_id_is_derived_from_the_key():
    first = make_message_id("campaign-7:contact-1", "shop.example")
    assert first == make_message_id("campaign-7:contact-1", "shop.example")
    assert first != make_message_id("campaign-7:contact-2", "shop.example")
    assert first.startswith("<") and first.endswith("@shop.example>")
    local = first[1:].split("@")[0]
    assert len(local) == 32 and int(local, 16) >= 0


def test_message_id_domain_is_punycode():
    assert make_message_id("k", "bücher.de").endswith("@xn--bcher-kva.de>")


def test_headers_in_order_and_body_parts():
    raw = build(headers={"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    names = [line.split(b":")[0] for line in header_block(raw) if line[:1] not in (b" ", b"\t")]
    assert names == [
        b"From",
        b"To",
        b"Subject",
        b"Date",
        b"Message-ID",
        b"MIME-Version",
        b"List-Unsubscribe-Post",
        b"Content-Type",
    ]
    message = parse(raw)
    assert message["Date"] == "Tue, 04 Jun 2024 09:30:00 +0000"
    assert email.utils.parsedate_to_datetime(message["Date"]).timestamp() == DATE
    assert message["Message-ID"] == "<abc@shop.example>"
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert plain["Content-Transfer-Encoding"] == "7bit"
    assert plain.get_content().replace("\r\n", "\n") == "Hi there\n"
    assert html.get_content().replace("\r\n", "\n") == "<p>Hi there</p>\n"


def test_same_input_same_bytes_and_boundary_follows_message_id():
    assert build() == build()
    other = build(message_id="<other@shop.example>")
    assert parse(build()).get_boundary() != parse(other).get_boundary()


@pytest.mark.parametrize(
    "subject",
    [
        "Grüße aus München",
        "Your cart 🛒 is waiting — " * 8,
        "日本語の件名です。" * 6,
        "Plain text that merely looks like =?utf-8?q?an_encoded_word?=",
        "A long plain ASCII subject line " * 10,
        "x" * 1200,
    ],
)
def test_subject_round_trips_and_lines_are_folded(subject):
    raw = build(subject=subject)
    assert parse(raw)["Subject"] == subject
    assert all(len(line) <= 78 for line in header_block(raw)[2:4] if b"Subject" in line)
    subject_lines = []
    for line in header_block(raw):
        if line.startswith(b"Subject:") or (subject_lines and line[:1] == b" "):
            subject_lines.append(line)
        elif subject_lines:
            break
    assert all(len(line) <= 78 for line in subject_lines), subject_lines
    assert all(line.isascii() for line in header_block(raw))


def test_line_break_in_subject_cannot_start_a_header():
    raw = build(subject="Hi\r\nBcc: victim@example.org")
    assert parse(raw)["Bcc"] is None
    assert parse(raw)["Subject"] == "Hi Bcc: victim@example.org"


def test_addresses_with_display_names_and_idn():
    raw = build(from_addr="Café Ünïcode <news@bücher.de>", to_addr='"Doe, Ann" <ann@例え.jp>')
    message = parse(raw)
    assert message["From"].addresses[0].display_name == "Café Ünïcode"
    assert message["From"].addresses[0].addr_spec == "news@xn--bcher-kva.de"
    assert message["To"].addresses[0].display_name == "Doe, Ann"
    assert message["To"].addresses[0].addr_spec == "ann@xn--r8jz45g.jp"
    assert b'To: "Doe, Ann" <ann@xn--r8jz45g.jp>\r\n' in raw


def test_bare_addresses():
    message = parse(build(from_addr="news@shop.example", to_addr="ann@example.org"))
    assert message["From"] == "news@shop.example"
    assert message["To"] == "ann@example.org"


@pytest.mark.parametrize(
    ("html", "encoding"),
    [
        ("<p>Hi &#233;l&#232;ve</p>\n" * 40, "7bit"),
        ("<p>Hi élève</p>", "quoted-printable"),  # not ASCII
        ("<p>" + "x" * 999 + "</p>", "quoted-printable"),  # a line SMTP does not carry
        ("<p>" + "x" * 991 + "</p>", "7bit"),  # 998 exactly
        ("<p>a\rb</p>", "quoted-printable"),  # a bare CR
        ("<p>a\0b</p>", "quoted-printable"),
    ],
)
def test_a_part_goes_as_it_is_when_smtp_carries_it_unchanged(html: str, encoding: str) -> None:
    rich = list(parse(build(html=html)).iter_parts())[1]
    assert rich["Content-Transfer-Encoding"] == encoding
    assert rich.get_content().replace("\r\n", "\n") == html.replace("\r", "\n")


def test_a_part_holding_the_boundary_is_quoted_printable() -> None:
    boundary = parse(build()).get_boundary()
    rich = list(parse(build(html=f"<p>\n--{boundary}\n</p>")).iter_parts())[1]
    assert rich["Content-Transfer-Encoding"] == "quoted-printable"
    assert rich.get_content().replace("\r\n", "\n") == f"<p>\n--{boundary}\n</p>"


@given(html=st.text(st.characters(max_codepoint=127), max_size=2000))
def test_ascii_content_round_trips_whichever_encoding(html: str) -> None:
    raw = build(html=html)
    assert all(len(line) <= 998 for line in wire_lines(raw))
    rich = list(parse(raw).iter_parts())[1]
    normalize = lambda s: s.replace("\r\n", "\n").replace("\r", "\n")  # noqa: E731
    assert normalize(rich.get_content()) == normalize(html)


def test_body_quoted_printable_handles_dots_trailing_blanks_and_long_lines():
    text = ".\nline with trailing blanks   \n" + "é" * 3000 + "\n.hidden dot\nno newline at end"
    html = "<p>" + "x" * 5000 + "</p>\r\n.\r\n"
    raw = build(text=text, html=html)
    lines = wire_lines(raw)
    assert max(len(line) for line in lines) <= 998
    body_lines = lines[lines.index(b"") + 1 :]
    assert all(len(line) <= 76 for line in body_lines)
    assert b"." not in body_lines, "a lone dot line must be encoded"
    assert not any(line.endswith((b" ", b"\t")) for line in body_lines)
    plain, rich = parse(raw).iter_parts()
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content().replace("\r\n", "\n") == html.replace("\r\n", "\n")


def test_extra_headers_are_folded_and_kept_in_order():
    unsubscribe = "<https://shop.example/u/" + "a" * 60 + ">, <mailto:u@shop.example?subject=u>"
    raw = build(
        headers={
            "List-Unsubscribe": unsubscribe,
            "Feedback-ID": "c7:marketing:shop:mailpulse",
            "X-Mailpulse-Key": "campaign-7:contact-1",
        }
    )
    message = parse(raw)
    assert message["List-Unsubscribe"] == unsubscribe
    assert message["Feedback-ID"] == "c7:marketing:shop:mailpulse"
    assert b"List-Unsubscribe: <https://" in raw and b">,\r\n <mailto:" in raw


@pytest.mark.parametrize(
    "kwargs",
    [
        {"to_addr": "not an address"},
        {"to_addr": "ann@example.org, bob@example.org"},
        {"to_addr": "ann@example.org\r\nBcc: x@y.z"},
        {"to_addr": "ännchen@example.org"},
        {"from_addr": "Shop <>"},
        {"to_addr": "ann@-bad-.例え"},
        {"message_id": "no-brackets@shop.example"},
        {"headers": {"Subject": "second subject"}},
        {"headers": {"Bad Name": "x"}},
        {"headers": {"X-Colon:": "x"}},
        {"headers": {"List-Unsubscribe": "<https://x/" + "a" * 1000 + ">"}},
    ],
)
def test_bad_input_is_refused(kwargs):
    with pytest.raises(ValueError):
        build(**kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ann@example.org", ("", "ann@example.org")),
        ("Ann <ann@example.org>", ("Ann", "ann@example.org")),
        ('"Doe, \\"Ann\\"" <ann@example.org>', ('Doe, "Ann"', "ann@example.org")),
        ("  Ann Doe  <ann@bücher.de> ", ("Ann Doe", "ann@bücher.de")),
    ],
)
def test_parse_address(text, expected):
    assert parse_address(text) == expected


header_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"),
    max_size=200,
)


@settings(max_examples=150, deadline=None)
@given(
    subject=header_text, name=header_text, text=st.text(max_size=500), html=st.text(max_size=500)
)
def test_any_content_round_trips(subject, name, text, html):
    raw = build(
        subject=subject,
        text=text,
        html=html,
        from_addr=f'"{name}" <a@b.example>'
        if '"' not in name and "\\" not in name
        else "a@b.example",
    )
    lines = wire_lines(raw)
    assert max(len(line) for line in lines) <= 998
    assert all(line.isascii() for line in lines)
    message = parse(raw)
    # Readers collapse whitespace runs while unfolding; compare the words.
    assert message["Subject"].split() == subject.split()
    plain, rich = message.iter_parts()
    normalize = lambda s: s.replace("\r\n", "\n").replace("\r", "\n")  # noqa: E731
    assert normalize(plain.get_content()) == normalize(text)
    assert normalize(rich.get_content()) == normalize(html)
