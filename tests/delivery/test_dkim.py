import base64
import hashlib
import re

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpulse.delivery import DkimSigner, build_message, dns_txt_record, generate_rsa_key
from mailpulse.delivery.dkim import relaxed_body, relaxed_header
from mailpulse.types import RenderedContent

# A 768-bit key made with `openssl genrsa 768`: too short for DKIM, kept only to be refused.
SHORT_KEY = b"""-----BEGIN PRIVATE KEY-----
MIIB5QIBADANBgkqhkiG9w0BAQEFAASCAc8wggHLAgEAAmEAt74hQytfT4V35QDk
tjwlBtrdI6ZWs3BC7OVprrF4zOb+BXMvgdJk+ppcvwp5P2Lag92RxMuRTbB0kIz3
qhmpy+KJwXEp0m01aUFD7GKSQGRIIxw7FohhWxBdYpO81gcDAgMBAAECYEJOaG52
3mQyA/wuAFsLBUmd/aN5yVvjrSMT/rk97hvzV8Pbt08f/7S3s7R1MSAAqcFPif3f
ueumbvhxDzzAOotQVw3FgJ82+j2dIbG5M+YVgFg/Lal+A1+eLq1PpI/JcQIxAOuG
tYgf0+0lYdaMYWs2YSAlulI3fraBelj0DUUta1IyrRZRt3Bvm4kBGSafRAw2FQIx
AMe3DfihhgyE+6kuP4sTnLeoFpJxNzE6UpnCGqxfPe3wwxp6eoyIYse3WLg9GxNm
twIxAJjN6gKp25307df7dczQGA16TLrApGYV9OG3XNCv2fwXQrLDS4cX8cneO4oS
NFzTzQIwPUbBFqQYiQbUYFg8TuO5lfAQ3OW31XbbmSmhHXorejIA6sLhjvTZugVb
R0wYXp+JAjEAuOvQjb26pp/B+vXkOBrj3sG3UJN7d4/7pYa7voSRRoTMQ6MA6kHl
sfJjqUt1R2Yz
-----END PRIVATE KEY-----
"""


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return generate_rsa_key(2048)


@pytest.fixture(scope="module")
def signer(rsa_pem) -> DkimSigner:
    return DkimSigner("shop.example", "mp1", rsa_pem)


def verify(message: bytes, pem: bytes, selector: str = "mp1", domain: str = "shop.example") -> bool:
    record = dns_txt_record(pem).encode("ascii")

    def dnsfunc(name, timeout=5):
        return record if name == f"{selector}._domainkey.{domain}.".encode() else b""

    return dkim.verify(message, dnsfunc=dnsfunc)


def built(subject="Hello", text="Hi\n", html="<p>Hi</p>\n", headers=None) -> bytes:
    return build_message(
        RenderedContent(subject=subject, html=html, text=text),
        from_addr="Shop <news@shop.example>",
        to_addr="Ann Doe <ann@example.org>",
        message_id="<k1@shop.example>",
        date=1717493400.0,
        headers=headers,
    )


RAW_MESSAGES = {
    "folded headers and odd spacing": (
        b"From:   Shop  <news@shop.example>\r\n"
        b"To: ann@example.org\r\n"
        b"Subject: a subject\r\n\tfolded with a tab   \r\n  and spaces\r\n"
        b"SUBJECT-X: not signed\r\n"
        b"Date: Tue, 04 Jun 2024 09:30:00 +0000\r\n"
        b"\r\n"
        b"body with trailing blanks   \r\n"
        b"inner \t  runs\tof   blanks\r\n"
        b"\r\n\r\n\r\n"
    ),
    "empty body": b"From: news@shop.example\r\nSubject: nothing\r\n\r\n",
    "only empty lines": b"From: news@shop.example\r\nSubject: x\r\n\r\n\r\n\r\n\r\n",
    "no blank line at all": b"From: news@shop.example\r\nSubject: x\r\n",
    "dots and long lines": (
        b"From: news@shop.example\r\nTo: a@b.example\r\n\r\n.\r\n..x\r\n" + b"y" * 990 + b"\r\n"
    ),
}


@pytest.mark.parametrize("name", list(RAW_MESSAGES))
def test_raw_messages_verify_with_dkimpy(signer, rsa_pem, name):
    signed = signer.sign(RAW_MESSAGES[name])
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
    assert verify(signed, rsa_pem)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"subject": "Grüße aus München 🛒 " * 5},
        {
            "headers": {
                "List-Unsubscribe": "<https://shop.example/u/"
                + "t" * 70
                + ">, <mailto:u@x.example>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "Feedback-ID": "c7:marketing:shop:mailpulse",
            }
        },
        {"text": "trailing   \n\n\n\n", "html": "<p>x</p>   \r\n\r\n"},
        {"text": "é" * 5000, "html": "<table>" + "<td>cell</td>" * 2000 + "</table>"},
    ],
)
def test_built_messages_verify_with_dkimpy(signer, rsa_pem, kwargs):
    assert verify(signer.sign(built(**kwargs)), rsa_pem)


def test_h_lists_present_headers_and_oversigns_from(signer):
    signed = signer.sign(built(headers={"Feedback-ID": "a:b:c:shop"}))
    header = signed.split(b"\r\n\r\n")[0].split(b"\r\nFrom:")[0]
    unfolded = re.sub(rb"\s+", b"", header.split(b"h=")[1].split(b";")[0])
    assert unfolded.split(b":") == [
        b"from",
        b"to",
        b"subject",
        b"date",
        b"message-id",
        b"mime-version",
        b"content-type",
        b"feedback-id",
        b"from",
    ]
    assert b"t=1" in header and b"d=shop.example; s=mp1;" in header


def test_signed_header_lines_stay_short(signer):
    signed = signer.sign(built())
    dkim_lines = signed.split(b"\r\nFrom:")[0].split(b"\r\n")
    assert all(len(line) <= 78 for line in dkim_lines)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Subject: Hello", b"Subject: Hellp"),
        (b"Hi\r\n", b"Ho\r\n"),
        (
            b"To: Ann Doe <ann@example.org>\r\n",
            b"To: Ann Doe <ann@example.org>\r\nFrom: x@evil.example\r\n",
        ),
    ],
)
def test_tampering_fails_verification(signer, rsa_pem, old, new):
    signed = signer.sign(built())
    assert old in signed
    assert not verify(signed.replace(old, new, 1), rsa_pem)


def test_whitespace_changes_survive_relaxed_canonicalization(signer, rsa_pem):
    signed = signer.sign(built())
    reformatted = (
        signed.replace(b"Subject: Hello", b"Subject:   Hello  ").replace(b"Hi\r\n", b"Hi \t \r\n")
        + b"\r\n\r\n"
    )
    assert verify(reformatted, rsa_pem)


def test_timestamp_and_domain_tags(rsa_pem):
    signed = DkimSigner("bücher.de", "s2024", rsa_pem).sign(built(), timestamp=1717493400.7)
    assert b"d=xn--bcher-kva.de; s=s2024; t=1717493400;" in signed


ascii_line = st.text(st.sampled_from("ab. \t-=xyz"), max_size=40)


@settings(max_examples=30, deadline=None)
@given(
    subject=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=120),
    lines=st.lists(ascii_line, max_size=12),
    trailing_empty=st.integers(0, 3),
)
def test_any_content_verifies(signer, rsa_pem, subject, lines, trailing_empty):
    message = built(subject=subject)
    head = message.split(b"\r\n\r\n", 1)[0]
    body = "\r\n".join(lines).encode() + b"\r\n" * (1 + trailing_empty)
    assert verify(signer.sign(head + b"\r\n\r\n" + body), rsa_pem)


def ed25519_pem() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_ed25519_signature_checks_out_against_dkimpy_canonicalization():
    pem = ed25519_pem()
    signer = DkimSigner("shop.example", "ed1", pem)
    assert signer.algorithm == "ed25519-sha256"
    message = RAW_MESSAGES["folded headers and odd spacing"]
    signed = signer.sign(message)
    record = dns_txt_record(pem)
    assert record.startswith("v=DKIM1; k=ed25519; p=")
    public = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(record.split("p=")[1]))
    # An independent check: dkimpy's canonicalization, RFC 8463's hash-then-sign.
    fields = re.split(rb"\r\n(?![ \t])", signed.split(b"\r\n\r\n")[0])
    signature_field = fields[0]
    tags = dict(
        t.split(b"=", 1)
        for t in re.sub(rb"\s+", b"", signature_field.split(b":", 1)[1]).split(b";")
        if t
    )
    assert tags[b"a"] == b"ed25519-sha256"
    body = signed.split(b"\r\n\r\n", 1)[1]
    assert base64.b64decode(tags[b"bh"]) == hashlib.sha256(Relaxed.canonicalize_body(body)).digest()
    others = [(f.split(b":", 1)[0], f.split(b":", 1)[1] + b"\r\n") for f in fields[1:]]
    chosen = []
    for name in tags[b"h"].split(b":"):
        matches = [f for f in others if f[0].lower() == name and f not in chosen]
        if matches:
            chosen.append(matches[-1])
    unsigned = re.sub(rb"b=[^;]*$", b"b=", signature_field)
    data = b"".join(
        n.lower() + b":" + v for n, v in Relaxed.canonicalize_headers(chosen)
    ) + b"".join(
        n.lower() + b":" + v
        for n, v in Relaxed.canonicalize_headers([(b"DKIM-Signature", unsigned.split(b":", 1)[1])])
    ).removesuffix(b"\r\n")
    public.verify(base64.b64decode(tags[b"b"]), hashlib.sha256(data).digest())


def test_ed25519_verifies_with_dkimpy():
    # dkimpy verifies ed25519 through PyNaCl (a dev dependency).
    pem = ed25519_pem()
    signed = DkimSigner("shop.example", "ed1", pem).sign(built())
    assert verify(signed, pem, selector="ed1")


def test_dns_txt_record_for_rsa(rsa_pem):
    record = dns_txt_record(rsa_pem)
    assert record.startswith("v=DKIM1; k=rsa; p=")
    der = base64.b64decode(record.split("p=")[1])
    assert serialization.load_der_public_key(der).key_size == 2048


@pytest.mark.parametrize(
    "pem",
    [
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
)
def test_bad_keys_are_refused(pem):
    with pytest.raises(ValueError, match=r"DKIM|PEM"):
        DkimSigner("shop.example", "mp1", pem)


def test_short_rsa_key_is_refused():
    with pytest.raises(ValueError, match="768 bits"):
        DkimSigner("shop.example", "mp1", SHORT_KEY)
    with pytest.raises(ValueError, match="at least 1024"):
        generate_rsa_key(512)


def test_bad_selector_and_missing_from_are_refused(rsa_pem):
    with pytest.raises(ValueError, match="selector"):
        DkimSigner("shop.example", "bad selector", rsa_pem)
    with pytest.raises(ValueError, match="From"):
        DkimSigner("shop.example", "mp1", rsa_pem, signed_headers=["Subject"])


def test_message_without_headers_is_refused(signer):
    with pytest.raises(ValueError, match="header"):
        signer.sign(b" continuation first\r\n\r\nbody")


@given(
    st.lists(
        st.sampled_from([b" ", b"  ", b"\t", b" \t ", b"a", b"xy", b"\r\n", b"\r\n\r\n", b"=20"]),
        max_size=40,
    )
)
def test_relaxed_body_canonicalizes_as_dkimpy_does(pieces: list[bytes]) -> None:
    body = b"".join(pieces)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"  # what SMTP carries
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@given(
    st.text(alphabet="ab <>:\t", max_size=40),
    st.lists(st.text(alphabet="ab <>:,\t", max_size=40), max_size=3),
)
def test_relaxed_header_is_dkimpys(first: str, continued: list[str]) -> None:
    """Folded or not, blanks collapsed or not: the canonical form dkimpy computes."""
    raw = ("\r\n ".join([first, *continued])).encode()
    field = b"List-Unsubscribe:" + raw
    [(name, value)] = Relaxed.canonicalize_headers([(b"List-Unsubscribe", raw + b"\r\n")])
    assert relaxed_header(field) == name.lower() + b":" + value.removesuffix(b"\r\n")
