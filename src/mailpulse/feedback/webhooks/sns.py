"""Amazon SNS messages to an HTTPS endpoint, checked as AWS documents ("Verifying the
signatures of Amazon SNS messages"):

- the signing certificate is fetched only from an `https://sns.<region>.amazonaws.com/...pem`
  URL (a message naming any other is the classic forgery: the forger's own certificate), over
  TLS checked against the system's CAs, and kept (`Certificates`);
- the signature (`SignatureVersion` 1: SHA1withRSA, 2: SHA256withRSA) is over the string to
  sign: name, newline, value, newline, for each of a fixed list of fields in byte order
  (Message, MessageId, Subject if there is one, Timestamp, TopicArn, Type for a notification;
  Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type for a subscription or
  unsubscribe confirmation).

`Fetch` is the seam through which certificates and subscription confirmations are fetched:
HTTPS by default, a test's local certificate in tests.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailpulse.feedback.webhooks.model import Refusal, Refused

log = logging.getLogger("mailpulse.webhooks")

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"
_SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_FIELDS[UNSUBSCRIBE_CONFIRMATION] = _SIGNED_FIELDS[SUBSCRIPTION_CONFIRMATION]
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
_SNS_HOST = re.compile(r"^sns\.[a-z0-9-]{1,40}\.amazonaws\.com(?:\.cn)?$")
MAX_CERTIFICATE = 64 * 1024  # bytes of a certificate fetched
KEPT_CERTIFICATES = 32  # SNS signs with one per region at a time; a few rotations' worth
FETCH_TIMEOUT = 10.0

Fetch = Callable[[str], Awaitable[bytes]]


class FetchError(Exception):
    """A certificate or a confirmation URL could not be fetched."""


class SnsMessage(msgspec.Struct, kw_only=True):
    """An SNS message's envelope, as posted to an HTTP(S) subscriber."""

    Type: str
    MessageId: str
    TopicArn: str
    Timestamp: str
    SignatureVersion: str
    Signature: str
    SigningCertURL: str
    Message: str = ""
    Subject: str | None = None
    SubscribeURL: str = ""
    Token: str = ""


def string_to_sign(message: SnsMessage) -> bytes:
    """What SNS signed: a field absent from the message (a notification's Subject) is left
    out."""
    fields = _SIGNED_FIELDS.get(message.Type)
    if fields is None:
        raise Refused(400, f"not an SNS message type: {message.Type!r}", "Type", Refusal.MALFORMED)
    lines = []
    for name in fields:
        value = getattr(message, name)
        if value is None:
            continue
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


def sns_url_problem(url: str, certificate: bool) -> str | None:
    """Why `url` is no SNS address of AWS's to fetch from (a certificate, ending .pem, when
    `certificate`), or None."""
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "it has blanks or control characters in it"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"it is not a URL: {exc}"
    if parts.scheme != "https":
        return "it is not an https URL"
    if parts.username is not None or parts.password is not None:
        return "it names a user"
    if port not in (None, 443):
        return f"it names port {port}"
    if not _SNS_HOST.match(parts.hostname or ""):
        return f"{parts.hostname!r} is not an Amazon SNS host (sns.<region>.amazonaws.com)"
    if certificate and not parts.path.endswith(".pem"):
        return "it is not a .pem file"
    return None


async def fetch_https(url: str) -> bytes:
    """GET `url` over TLS checked against the system's CAs, no redirect followed, at most
    MAX_CERTIFICATE bytes of answer."""
    try:
        async with (
            httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client,
            client.stream("GET", url) as answer,
        ):
            if answer.status_code != 200:
                raise FetchError(f"{url} answered {answer.status_code}")
            body = b""
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > MAX_CERTIFICATE:
                    raise FetchError(f"{url} answered more than {MAX_CERTIFICATE} bytes")
            return body
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {exc}") from exc


class Certificates:
    """SNS signing keys by certificate URL, fetched once and kept (the most recent
    KEPT_CERTIFICATES); a certificate not valid now is refused, and fetched again later."""

    def __init__(self, fetch: Fetch = fetch_https, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self._kept: OrderedDict[str, tuple[rsa.RSAPublicKey, float]] = OrderedDict()

    async def key(self, url: str) -> rsa.RSAPublicKey:
        problem = sns_url_problem(url, certificate=True)
        if problem is not None:
            raise Refused(
                400,
                f"SigningCertURL {url[:200]!r} refused: {problem}",
                "SigningCertURL",
                Refusal.FORGED_CERTIFICATE,
            )
        now = self._clock()
        kept = self._kept.get(url)
        if kept is not None and now < kept[1]:
            self._kept.move_to_end(url)
            return kept[0]
        try:
            pem = await self._fetch(url)
        except FetchError as exc:
            log.warning("could not fetch the SNS signing certificate: %s", exc)
            raise Refused(
                503,
                "the signing certificate could not be fetched; try again",
                "SigningCertURL",
                Refusal.UNAVAILABLE,
            ) from None
        key, not_after = self._read(pem, now)
        self._kept[url] = (key, not_after)
        while len(self._kept) > KEPT_CERTIFICATES:
            self._kept.popitem(last=False)
        return key

    @staticmethod
    def _read(pem: bytes, now: float) -> tuple[rsa.RSAPublicKey, float]:
        def refused(why: str) -> Refused:
            return Refused(401, why, "SigningCertURL", Refusal.UNAUTHORIZED)

        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise refused("the signing certificate is not a PEM certificate") from None
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise refused("the signing certificate's key is not RSA")
        starts = certificate.not_valid_before_utc.timestamp()
        ends = certificate.not_valid_after_utc.timestamp()
        if not starts <= now <= ends:
            raise refused("the signing certificate is not valid now")
        return key, ends


async def verify(message: SnsMessage, certificates: Certificates) -> None:
    """Refused unless SNS signed `message` with the certificate it names."""
    algorithm = _HASHES.get(message.SignatureVersion)
    if algorithm is None:
        raise Refused(
            400,
            f"SignatureVersion {message.SignatureVersion!r}: SNS signs with version 1 or 2",
            "SignatureVersion",
            Refusal.MALFORMED,
        )
    signed = string_to_sign(message)
    try:
        signature = base64.b64decode(message.Signature, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(
            401, "the signature is not base64", "Signature", Refusal.UNAUTHORIZED
        ) from None
    key = await certificates.key(message.SigningCertURL)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Refused(
            401, "the signature does not verify", "Signature", Refusal.UNAUTHORIZED
        ) from None
