"""[webhooks.*] in mailpulse.toml: none by default, each provider's table read, and each
mistake refused with its line."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mailpulse.errors import ProjectError
from mailpulse.project import load_project
from tests.feedback.webhooks.conftest import WEBHOOKS, sendgrid_public_key
from tests.test_project_tracking import add, last_line_of
from tests.test_project_tracking import project as project  # the fixture

P384 = ec.SECP384R1()
TOPIC = "arn:aws:sns:eu-west-1:123456789012:mail-events"


def der_of(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(public).decode()


def test_no_provider_is_configured_by_default(project: Path) -> None:
    assert load_project(project).webhooks.configured() == ()


def test_each_providers_table_is_read(project: Path) -> None:
    add(project, WEBHOOKS)
    webhooks = load_project(project).webhooks
    assert webhooks.configured() == ("ses", "sendgrid", "mailgun", "postmark")
    assert webhooks.sendgrid is not None and webhooks.sendgrid.tolerance == 300.0
    assert webhooks.mailgun is not None and webhooks.mailgun.tolerance == 300.0


def test_a_sendgrid_key_may_be_written_as_pem(project: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    add(project, f'[webhooks.sendgrid]\npublic_key = """{pem.decode()}"""\ntolerance = "2m"\n')
    found = load_project(project).webhooks.sendgrid
    assert found is not None and found.tolerance == 120.0
    assert found.public_key.public_numbers() == key.public_key().public_numbers()


@pytest.mark.parametrize(
    ("written", "key", "message"),
    [
        ("[webhooks.ses]\ntopics = []", "topics", "name the SNS topics"),
        ('[webhooks.ses]\ntopics = ["mail-events"]', "topics", "is not an SNS topic's ARN"),
        (f'[webhooks.ses]\ntopics = ["{TOPIC}"]\nregion = "eu"', "region", "known: topics"),
        ('[webhooks.sendgrid]\npublic_key = "not a key"', "public_key", "not a public key"),
        (
            f'[webhooks.sendgrid]\npublic_key = "{der_of(rsa.generate_private_key(65537, 2048))}"',
            "public_key",
            "not an ECDSA P-256 key",
        ),
        (
            f'[webhooks.sendgrid]\npublic_key = "{der_of(ec.generate_private_key(P384))}"',
            "public_key",
            "not an ECDSA P-256 key",
        ),
        (
            f'[webhooks.sendgrid]\npublic_key = "{sendgrid_public_key()}"\ntolerance = "soon"',
            "tolerance",
            "not a duration",
        ),
        (
            f'[webhooks.sendgrid]\npublic_key = "{sendgrid_public_key()}"\ntolerance = "5s"',
            "tolerance",
            "give from '30s' to '1h'",
        ),
        ('[webhooks.mailgun]\nsigning_key = "  "', "signing_key", "give Mailgun's"),
        ('[webhooks.mailgun]\nsigning = "key-1"', "signing", "did you mean 'signing_key'?"),
        (
            '[webhooks.postmark]\nusername = "hooks"\npassword = "short"',
            "password",
            "at least 16 characters",
        ),
        (
            '[webhooks.postmark]\nusername = "a:b"\npassword = "long-enough-password"',
            "username",
            "without ':'",
        ),
    ],
)
def test_mistakes_name_their_line(project: Path, written: str, key: str, message: str) -> None:
    add(project, written + "\n")
    with pytest.raises(ProjectError) as refused:
        load_project(project)
    assert message in refused.value.message
    assert refused.value.line == last_line_of(project, key)


def test_a_table_missing_what_it_needs_or_of_no_provider_is_refused(project: Path) -> None:
    add(project, "[webhooks.sendgrid]\ntolerance = '5m'\n")
    with pytest.raises(ProjectError) as refused:
        load_project(project)
    assert "[webhooks.sendgrid] needs 'public_key'" in refused.value.message
    assert refused.value.line == last_line_of(project, "[webhooks.sendgrid]")
    (project / "mailpulse.toml").write_text(
        (project / "mailpulse.toml")
        .read_text()
        .replace("[webhooks.sendgrid]", "[webhooks.sparkpost]")
    )
    with pytest.raises(ProjectError) as refused:
        load_project(project)
    assert "unknown key [webhooks] 'sparkpost'" in refused.value.message
