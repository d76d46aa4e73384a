"""A running server whose project takes all four ESPs' webhooks, the keys each provider signs
with (made here: a CA and an SNS signing certificate of our own, SendGrid's ECDSA key,
Mailgun's signing key, Postmark's credentials), and requests signed as each documents it.

Nothing reaches the internet: the SES webhook fetches certificates through the app's `fetch`
seam, which `Fetcher` answers with the local certificate (and records what was asked).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from mailpulse.feedback.webhooks.sns import FetchError
from tests.e2e.conftest import Deployment, Server, Sink, running_server, write_project

PAYLOADS = Path(__file__).parent / "payloads"
TOPIC = "arn:aws:sns:us-east-1:123456789012:mailpulse-events"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hooks", "s3cret-of-at-least-16"
APPLE_PROXY = "Mozilla/5.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148"
)


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


@dataclass(frozen=True)
class SnsSigner:
    """A CA of our own and an SNS-like signing certificate it issued."""

    key: rsa.RSAPrivateKey
    pem: bytes

    @classmethod
    def make(cls, valid_days: tuple[int, int] = (-1, 30)) -> SnsSigner:
        ca_key, key = _rsa(), _rsa()
        now = datetime.datetime.now(datetime.UTC)
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name("Test Root CA"))
            .issuer_name(_name("Test Root CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=2))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name("sns.amazonaws.com"))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=valid_days[0]))
            .not_valid_after(now + datetime.timedelta(days=valid_days[1]))
            .sign(ca_key, hashes.SHA256())
        )
        return cls(key, leaf.public_bytes(serialization.Encoding.PEM))

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        """`message` with its SignatureVersion, Signature and SigningCertURL (unless it names
        one), signed over the string AWS documents for its Type."""
        if message["Type"] == "Notification":
            names = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
        else:
            names = (
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            )
        signed = "".join(f"{n}\n{message[n]}\n" for n in names if n in message).encode()
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(signed, padding.PKCS1v15(), digest)
        return {
            "SigningCertURL": CERT_URL,
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
        }


_SNS: list[SnsSigner] = []


def sns_signer() -> SnsSigner:
    if not _SNS:  # RSA keys take a while to make: one pair per session
        _SNS.append(SnsSigner.make())
    return _SNS[0]


@dataclass
class Fetcher:
    """The SES webhook's way to the network: the local certificate at CERT_URL (or others
    a test puts), and a confirmation at any SubscribeURL."""

    certificates: dict[str, bytes] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def __call__(self, url: str) -> bytes:
        self.asked.append(url)
        if url in self.certificates:
            return self.certificates[url]
        if "Action=ConfirmSubscription" in url:
            return b"<ConfirmSubscriptionResponse/>"
        raise FetchError(f"{url}: 404")


_SENDGRID = ec.generate_private_key(ec.SECP256R1())


def sendgrid_public_key(key: ec.EllipticCurvePrivateKey = _SENDGRID) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sendgrid_headers(
    body: bytes, at: float | None = None, key: ec.EllipticCurvePrivateKey = _SENDGRID
) -> dict[str, str]:
    """The headers of a Signed Event Webhook request: ECDSA over SHA-256 of timestamp + body."""
    timestamp = str(int(time.time() if at is None else at))
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def mailgun_signed(
    body: dict[str, Any], at: float | None = None, key: str = MAILGUN_KEY, token: str = ""
) -> dict[str, Any]:
    """`body` with Mailgun's signature block: HMAC-SHA256 of timestamp + token."""
    timestamp = str(int(time.time() if at is None else at))
    token = token or secrets.token_hex(25)
    mac = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {**body, "signature": {"timestamp": timestamp, "token": token, "signature": mac}}


def postmark_auth(user: str = POSTMARK_USER, password: str = POSTMARK_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


WEBHOOKS = f"""
[webhooks.ses]
topics = ["{TOPIC}"]

[webhooks.sendgrid]
public_key = "{sendgrid_public_key()}"

[webhooks.mailgun]
signing_key = "{MAILGUN_KEY}"

[webhooks.postmark]
username = "{POSTMARK_USER}"
password = "{POSTMARK_PASSWORD}"
"""


@dataclass(frozen=True)
class Sent:
    """A message the server sent, as it reached the sink."""

    user: str
    email: str
    message_id: str
    key: str
    headers: dict[str, str]


@dataclass
class Hooks:
    server: Server
    sink: Sink
    fetcher: Fetcher

    async def sent(self, user: str) -> Sent:
        """The welcome message of a new contact `user`."""
        email = f"{user}@example.com"
        await self.server.send("identify", {"userId": user, "traits": {"email": email}})
        await self.server.send("track", {"userId": user, "event": "Signed Up"})
        [got] = await self.sink.wait_for(email)
        # Its outbox row knows its Message-ID once the send is recorded, after the 250.
        await wait_for_events(self.server, user, "Email Sent", 1)
        message = got.message
        headers = {name: str(value) for name, value in message.items()}
        return Sent(user, email, message["Message-ID"], message["X-Mailpulse-Key"], headers)

    async def post(
        self, provider: str, body: bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.server.client.post(
            f"/webhooks/{provider}", content=body, headers=headers or {}, auth=None
        )

    async def ses(self, event: dict[str, Any], **envelope: Any) -> httpx.Response:
        """An SNS notification of the SES `event`, signed (SignatureVersion 2 unless
        `envelope` says; its fields override the notification's)."""
        version = envelope.pop("SignatureVersion", "2")
        message = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC,
            "Message": json.dumps(event),
            "Timestamp": iso(time.time()),
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            **envelope,
        }
        signed = sns_signer().sign(message, version)
        return await self.post("ses", json.dumps(signed).encode())

    async def sendgrid(
        self, events: list[dict[str, Any]], at: float | None = None
    ) -> httpx.Response:
        body = json.dumps(events).encode()
        return await self.post("sendgrid", body, sendgrid_headers(body, at))

    async def mailgun(self, body: dict[str, Any], at: float | None = None) -> httpx.Response:
        return await self.post("mailgun", json.dumps(mailgun_signed(body, at)).encode())

    async def postmark(self, record: dict[str, Any]) -> httpx.Response:
        body = json.dumps(record).encode()
        return await self.post("postmark", body, {"Authorization": postmark_auth()})

    async def events(self, user: str, name: str, count: int = 1) -> list[dict]:
        """`user`'s events called `name`, once there are `count` of them."""
        return await wait_for_events(self.server, user, name, count)

    def counted(self, provider: str, result: str, metric: str = "events") -> float:
        value = self.server.pipeline.metrics.registry.get_sample_value(
            f"mailpulse_webhook_{metric}_total", {"provider": provider, "result": result}
        )
        return value or 0.0


async def wait_for_events(server: Server, user: str, name: str, count: int) -> list[dict]:
    async with asyncio.timeout(10):
        while True:
            found = [e for e in await server.events(user) if e["event"] == name]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)


def iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(timespec="milliseconds")


def payload(name: str, sent: Sent | None = None, **values: str) -> Any:
    """A payload file with the message `sent` (and `values`) in its placeholders."""
    text = (PAYLOADS / name).read_text(encoding="utf-8")
    if sent is not None:
        values = {
            "recipient": sent.email,
            "message_id": sent.message_id,
            "message_id_bare": sent.message_id.strip("<>"),
            "key": sent.key,
            **values,
        }
    for placeholder, value in values.items():
        text = text.replace("{{" + placeholder + "}}", json.dumps(value)[1:-1])
    return json.loads(text)


def webhook_project(root: Path, sink: Sink, extra: str = "") -> Path:
    project = write_project(root, sink.port)
    with (project / "mailpulse.toml").open("a") as toml:
        toml.write(WEBHOOKS + extra)
    return project


@pytest.fixture
async def hooks(tmp_path: Path) -> AsyncIterator[Hooks]:
    sink = Sink()
    await sink.start()
    fetcher = Fetcher({CERT_URL: sns_signer().pem})
    project = webhook_project(tmp_path / "project", sink)
    try:
        async with running_server(
            project, Deployment("embedded", tmp_path / "data"), fetch=fetcher
        ) as server:
            yield Hooks(server, sink, fetcher)
    finally:
        await sink.stop()
