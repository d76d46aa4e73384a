"""`[webhooks.<provider>]` of mailpulse.toml, as loaded: which ESPs may report to
`POST /webhooks/{provider}`, and what each proves a request is its own with.

    [webhooks.ses]        topics = ["arn:aws:sns:eu-west-1:123456789012:mail-events"]
    [webhooks.sendgrid]   public_key = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE..."
    [webhooks.mailgun]    signing_key = "key-..."
    [webhooks.postmark]   username = "..."  password = "..."

A provider without its table answers 404. Checked at load (mailpulse.project), each problem
named with its line.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

SES, SENDGRID, MAILGUN, POSTMARK = "ses", "sendgrid", "mailgun", "postmark"
PROVIDERS = (SES, SENDGRID, MAILGUN, POSTMARK)
# How old a signed timestamp may be (SendGrid's header, Mailgun's signature): a request
# replayed later is refused. Five minutes, as Mailgun's guide and the webhook services agree.
DEFAULT_TOLERANCE = "5m"
TOLERANCE_RANGE = (30.0, 3600.0)
MIN_PASSWORD = 16  # characters of Postmark's Basic auth password: all that stands for a signature
# An SNS topic's ARN: arn:<partition>:sns:<region>:<account>:<name>.
_TOPIC_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$")


@dataclass(frozen=True)
class SesSettings:
    topics: frozenset[str]  # the SNS topics whose messages are taken, by ARN


@dataclass(frozen=True)
class SendGridSettings:
    public_key: ec.EllipticCurvePublicKey  # the Signed Event Webhook's verification key
    tolerance: float


@dataclass(frozen=True)
class MailgunSettings:
    signing_key: bytes  # the HTTP webhook signing key
    tolerance: float


@dataclass(frozen=True)
class PostmarkSettings:
    username: str  # the Basic auth credentials given in the webhook's URL at Postmark
    password: str


@dataclass(frozen=True)
class WebhookSettings:
    ses: SesSettings | None = None
    sendgrid: SendGridSettings | None = None
    mailgun: MailgunSettings | None = None
    postmark: PostmarkSettings | None = None

    def configured(self) -> tuple[str, ...]:
        return tuple(p for p in PROVIDERS if getattr(self, p) is not None)


def topic_problem(arn: str) -> str | None:
    if _TOPIC_ARN.match(arn):
        return None
    return f"{arn!r} is not an SNS topic's ARN (arn:aws:sns:<region>:<account>:<topic>)"


def sendgrid_public_key(written: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 of its DER), or as PEM; ValueError
    unless it is an ECDSA P-256 public key."""
    text = written.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnicodeEncodeError) as exc:
        raise ValueError(f"not a public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("not an ECDSA P-256 key: copy the Signed Event Webhook's key")
    return key
